-- Pretraining samples: every impression of a pretrain-role domain; valid = the last `pretrain_valid_share` by time.
-- Incremental with int_impressions_split (macros/split_rebuild.sql): a day-window build recomputes the rows whose
-- split can have changed, from the cuts in int_split_cuts.
-- depends_on: {{ ref('int_split_cuts') }}
{{ config(materialized='incremental', incremental_strategy='split_rebuild',
          split_rebuild={'time': "timezone('UTC', event_timestamp)", 'column': 'event_timestamp',
                         'role': 'pretrain'},
          test_window={'column': 'event_timestamp', 'end': none, 'timestamp': true}) }}

select {{ sample_columns() }}
from {{ ref('int_impressions_split') }}
where role = 'pretrain' and {{ split_rebuild_condition(this, 'event_time', 'role') }}
