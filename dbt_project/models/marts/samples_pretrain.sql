-- Pretraining samples: every impression of a pretrain-role domain; valid = the last `pretrain_valid_share` by time.
select {{ sample_columns() }}
from {{ ref('int_impressions_split') }}
where role = 'pretrain'
