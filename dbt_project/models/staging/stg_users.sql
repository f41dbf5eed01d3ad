-- One row per user_id; duplicates keep the row with the most attributes filled, then the smallest values.
with ranked as (
    select
        cast(user_id as varchar) as user_id,
        cast(age_bucket as varchar) as age_bucket,
        cast(gender as varchar) as gender,
        cast(segment as varchar) as segment,
        row_number() over (
            partition by user_id
            order by
                (age_bucket is null)::int + (gender is null)::int + (segment is null)::int,
                age_bucket, gender, segment
        ) as rn
    from {{ source('raw', 'users') }}
)

select user_id, age_bucket, gender, segment
from ranked
where rn = 1
