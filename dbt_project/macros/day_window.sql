{#
Incremental builds by day window. The vars `days_from` / `days_to` (ISO dates, inclusive; either may be absent)
name the days whose raw impressions are new or changed. Each incremental model declares, in its config,
`day_window = {'column': ..., 'start': s, 'end': e}`: the rows it must recompute are those whose `column` day lies in
[days_from + s, days_to + e] (`end: none` leaves the range open above). The `day_window` strategy below deletes
exactly that range from the table and inserts the model's rows, which the model restricts to the same range.

Without a window (no vars), on a first build and under --full-refresh, every filter here is `true`: the model is
its plain full query, and an incremental run without vars replaces every row (it equals a full build).
The window must cover every raw day that changed since the last build: days outside it are trusted as built.
#}

{# Whether the run names a day window (vars days_from / days_to), whatever the node being run. #}
{% macro day_window_vars_set() -%}
    {{ return(var('days_from', none) is not none or var('days_to', none) is not none) }}
{%- endmacro %}

{# Whether this model recomputes a day window rather than everything. #}
{% macro day_window_active() -%}
    {{ return(is_incremental() and day_window_vars_set()) }}
{%- endmacro %}

{# A day bound as a SQL date (`date_var` + `offset` days), or a UTC timestamptz at that day's 00:00. #}
{% macro _day_bound(date_var, offset, timestamp) -%}
    {%- set bound = "(cast('" ~ (var(date_var) | replace("'", "''")) ~ "' as date) + " ~ offset ~ ")" -%}
    {%- if timestamp -%}{{ utc_timestamp(bound) }}{%- else -%}{{ bound }}{%- endif -%}
{%- endmacro %}

{# SQL condition: `column` (a date, or a timestamp when `timestamp`) falls in [days_from + start, days_to + end];
   `end=none` leaves it open above. `true` when no window is active (`active`: default day_window_active()). #}
{% macro in_day_window(column, start=0, end=0, timestamp=false, active=none) -%}
    {%- set parts = [] -%}
    {%- if (day_window_active() if active is none else active) -%}
        {%- if var('days_from', none) is not none -%}
            {%- do parts.append(column ~ ' >= ' ~ _day_bound('days_from', start, timestamp)) -%}
        {%- endif -%}
        {%- if var('days_to', none) is not none and end is not none -%}
            {%- do parts.append(column ~ ' < ' ~ _day_bound('days_to', end + 1, timestamp)) -%}
        {%- endif -%}
    {%- endif -%}
    {{- '(' ~ (parts | join(' and ')) ~ ')' if parts else 'true' -}}
{%- endmacro %}

{# The model's own recomputed range (its config's `day_window`) as a SQL condition on its day column. #}
{% macro in_target_day_window() -%}
    {%- set w = config.get('day_window') -%}
    {%- if w is mapping -%}
        {{- in_day_window(w['column'], w.get('start', 0), w.get('end', 0), w.get('timestamp', false)) -}}
    {%- else -%}
        {#- parse time: config values are not resolved yet -#}
        true
    {%- endif -%}
{%- endmacro %}

{# Incremental strategy `day_window`: replace the model's day range (all rows when no window is active). #}
{% macro get_incremental_day_window_sql(arg_dict) %}
    {{ replace_rows_where(arg_dict, in_target_day_window()) }}
{% endmacro %}

{# The body of a replacing incremental strategy: delete the target's rows where `condition`, insert the model's. #}
{% macro replace_rows_where(arg_dict, condition) %}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ target }} where {{ condition }};
    insert into {{ target }} ({{ columns }}) (select {{ columns }} from {{ source }})
{% endmacro %}
