-- Cold-start-domain samples of the 'train' split (split rules: int_impressions_split).
select {{ sample_columns() }}
from {{ ref('int_impressions_split') }}
where role = 'coldstart' and split = 'train'
