-- Pretraining samples: every impression of a pretrain-role domain; valid = the last valid_days event days.
select {{ sample_columns() }}
from {{ ref('int_impressions_split') }}
where role = 'pretrain'
