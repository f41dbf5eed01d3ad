-- One row per query_id; duplicates keep the alphabetically first text.
with ranked as (
    select
        cast(query_id as varchar) as query_id,
        cast(text as varchar) as text,
        row_number() over (partition by query_id order by text) as rn
    from {{ source('raw', 'queries') }}
)

select query_id, text
from ranked
where rn = 1
