-- One row per item_id (earliest created_at wins), flagged has_text so text-less items get the "no text" vector.
-- created_at is kept as a naive UTC timestamp: all day arithmetic downstream is in UTC.
with ranked as (
    select
        cast(item_id as varchar) as item_id,
        cast(text as varchar) as text,
        cast(category as varchar) as category,
        cast(subcategory as varchar) as subcategory,
        timezone('UTC', cast(created_at as timestamptz)) as created_at,
        row_number() over (
            partition by item_id
            order by created_at, text nulls last, category, subcategory
        ) as rn
    from {{ source('raw', 'items') }}
)

select
    item_id,
    text,
    coalesce(trim(text) <> '', false) as has_text,
    category,
    subcategory,
    created_at
from ranked
where rn = 1
