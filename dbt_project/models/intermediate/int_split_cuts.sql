-- The split cuts of the current data, one row (split rules: int_impressions_split.sql): an impression of the
-- cold-start domain (or a history role) after `coldstart_test_after` is test, after `coldstart_valid_after` valid;
-- one of a pretrain domain after `pretrain_valid_after` is valid; the rest train. Cuts are event times
-- (`quantile_disc`) of the role's impressions, so impressions of one instant never straddle two splits.
-- A table rebuilt on every build (one pass over the event times): the split models' incremental builds
-- (macros/split_rebuild.sql) read it to know which rows can change split.
with roles as (
    select i.event_time, d.role
    from {{ ref('stg_impressions') }} as i
    inner join {{ ref('stg_domains') }} as d on i.domain_id = d.domain_id
    inner join {{ ref('stg_items') }} as it on i.item_id = it.item_id  -- the impressions int_impressions_split holds
)

select
    quantile_disc(event_time, round(1.0 - {{ var('test_share') }}, 6))
        filter (where role = 'coldstart') as coldstart_test_after,
    quantile_disc(event_time, round(1.0 - {{ var('test_share') }} - {{ var('valid_share') }}, 6))
        filter (where role = 'coldstart') as coldstart_valid_after,
    quantile_disc(event_time, round(1.0 - {{ var('pretrain_valid_share') }}, 6))
        filter (where role = 'pretrain') as pretrain_valid_after
from roles
