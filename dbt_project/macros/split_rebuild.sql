{#
Incremental builds of the split models (int_impressions_split and the sample marts). A row's split depends on the
cuts (int_split_cuts), which move whenever impressions are added, so a day-window build cannot keep every old row:
it recomputes, per role, the rows at or after the earliest of
  - the window's first day (the new or changed impressions),
  - the new cut of that role (rows after it may change split), and
  - the old boundary of that role in the table being rebuilt (rows after it may change split back to train):
    the later of its train rows and the earliest of its valid/test rows, read before anything is replaced;
and keeps the rows before it, whose split is train under the old and the new cuts alike. The cold-start domain
(and history rows, split by the same cuts) from its valid cut, pretrain domains from theirs: about the last 60 % of
the cold-start rows and 10 % of the pretrain rows, rather than every row.

A model opts in with `incremental_strategy='split_rebuild'` and
`split_rebuild={'time': <naive UTC event time in the table>, 'role': 'pretrain' | 'coldstart' | none}`
(none: the table has a `role` column); its select filters with `split_rebuild_condition(this, 'event_time', 'role')`.
Without an active day window (a first build, --full-refresh, a run without vars) the condition is `true`: the
plain full query, replacing every row.
#}

{# The earliest time from which `target`'s rows of `role` ('pretrain', or 'coldstart' for every other role) are
   recomputed, as a scalar SQL expression over the current (old) state of `target`. #}
{% macro split_rebuild_from(target, role) -%}
    {%- set cfg = config.get('split_rebuild') -%}
    {%- set cut = 'pretrain_valid_after' if role == 'pretrain' else 'coldstart_valid_after' -%}
    {%- if cfg['role'] is none -%}
        {%- set rows_of_role = "role = 'pretrain'" if role == 'pretrain' else "role <> 'pretrain'" -%}
    {%- else -%}
        {%- set rows_of_role = 'true' -%}
    {%- endif -%}
    least(
        {{ _day_bound('days_from', 0, false) if var('days_from', none) is not none else 'null' }},
        (select {{ cut }} from {{ ref('int_split_cuts') }}),
        (select least(max({{ cfg['time'] }}) filter (where split = 'train'),
                      min({{ cfg['time'] }}) filter (where split <> 'train'))
         from {{ target }} where {{ rows_of_role }})
    )
{%- endmacro %}

{# SQL condition on rows with naive UTC time `time_column` and role `role_column`: the row lies in the part of the
   table this build recomputes (see above); `true` without an active day window. #}
{% macro split_rebuild_condition(target, time_column, role_column) -%}
    {%- set cfg = config.get('split_rebuild') -%}
    {%- if not (day_window_active() and cfg is mapping) -%}
        true
    {%- elif cfg['role'] is not none -%}
        ({{ time_column }} >= {{ split_rebuild_from(target, cfg['role']) }})
    {%- else -%}
        (case when {{ role_column }} = 'pretrain'
            then {{ time_column }} >= {{ split_rebuild_from(target, 'pretrain') }}
            else {{ time_column }} >= {{ split_rebuild_from(target, 'coldstart') }} end)
    {%- endif -%}
{%- endmacro %}

{# Incremental strategy `split_rebuild`: replace the recomputed part of the table (the whole table without a
   window). The condition reads the table's old state, as the model's select did. #}
{% macro get_incremental_split_rebuild_sql(arg_dict) %}
    {%- set target = arg_dict['target_relation'] -%}
    {{ replace_rows_where(arg_dict, split_rebuild_condition(target, config.get('split_rebuild')['time'], 'role')) }}
{% endmacro %}
