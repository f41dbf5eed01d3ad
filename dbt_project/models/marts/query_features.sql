-- Event-timestamped query features for Feast (search domains only: rec impressions have no query).
select
    f.entity_id as query_id,
    {{ utc_timestamp('f.feature_day') }} as event_timestamp,
    f.impr_7d as query_impr_7d,
    f.clicks_7d as query_clicks_7d,
    {{ smoothed_ctr('f.clicks_7d', 'f.impr_7d') }} as query_ctr_7d
from {{ ref('int_entity_feature_days') }} as f
where f.entity_type = 'query'
