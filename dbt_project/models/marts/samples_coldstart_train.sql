-- Cold-start-domain samples of the 'train' split (split rules: int_impressions_split).
-- Incremental with int_impressions_split (macros/split_rebuild.sql): a day-window build recomputes the rows whose
-- split can have changed, from the cuts in int_split_cuts.
-- depends_on: {{ ref('int_split_cuts') }}
{{ config(materialized='incremental', incremental_strategy='split_rebuild',
          split_rebuild={'time': "timezone('UTC', event_timestamp)", 'column': 'event_timestamp',
                         'role': 'coldstart', 'splits': ['train']},
          test_window={'column': 'event_timestamp', 'end': none, 'timestamp': true}) }}

select {{ sample_columns() }}
from {{ ref('int_impressions_split') }}
where role = 'coldstart' and split = 'train' and {{ split_rebuild_condition(this, 'event_time', 'role') }}
