-- Cold-start-domain samples of the 'valid' split (split rules: int_impressions_split).
select {{ sample_columns() }}
from {{ ref('int_impressions_split') }}
where role = 'coldstart' and split = 'valid'
