-- Row conservation: the four sample marts together hold exactly as many rows as stg_impressions (less the
-- clicks of `history`-role domains, which are behaviour only).
with counts as (
    select
        (select count(*) from {{ ref('int_impressions_split') }} where role <> 'history') as impressions,
        (select count(*) from {{ ref('samples_pretrain') }})
        + (select count(*) from {{ ref('samples_coldstart_train') }})
        + (select count(*) from {{ ref('samples_coldstart_valid') }})
        + (select count(*) from {{ ref('samples_coldstart_test') }}) as samples
)

select * from counts where impressions <> samples
