{#
Incremental builds of the split models (int_impressions_split and the sample marts). A row's split depends on the
cuts (int_split_cuts), which move whenever impressions are added, so a day-window build cannot keep every old row.
A row of an older day changes split only if it lies between the old and the new position of a cut: the
train/valid cut of its role (pretrain or cold-start, history rows split by the cold-start cuts) or, cold-start
only, the valid/test cut. The old position is read from the table being rebuilt, before anything is replaced: the
latest row below the cut and the earliest row above it. So a build recomputes, per role, the rows
  - from the window's first day on (the new or changed impressions), and
  - for each cut that bounds a split the table holds: between the earliest and the latest of {the latest row below
    the old cut, the earliest row above it, the new cut} (the old cut lies between the first two),
and keeps the others, whose split is the same under the old and the new cuts. A daily tick moves each cut by about a
day's share of rows, so it recomputes about that many rows per cut, however long the history. A table holding no
row of the role yet recomputes all of them.

A model opts in with `incremental_strategy='split_rebuild'` and
`split_rebuild={'time': <naive UTC event time in the table>, 'role': 'pretrain' | 'coldstart' | none,
'splits': [the splits the table holds; default all], 'column': <the timestamptz column behind time; optional>}` (role none: the table has a `role` column); its select
filters with `split_rebuild_condition(this, 'event_time', 'role')`.
Without an active day window (a first build, --full-refresh, a run without vars) the condition is `true`: the
plain full query, replacing every row.
#}

{# The cuts of `role`: (cut column of int_split_cuts, condition of rows below it, of rows above it, the splits it
   separates). #}
{% macro _split_cuts_of(role) -%}
    {%- if role == 'pretrain' -%}
        {{ return([('pretrain_valid_after', "split = 'train'", "split <> 'train'", ['train', 'valid'])]) }}
    {%- else -%}
        {{ return([('coldstart_valid_after', "split = 'train'", "split <> 'train'", ['train', 'valid']),
                   ('coldstart_test_after', "split <> 'test'", "split = 'test'", ['valid', 'test'])]) }}
    {%- endif -%}
{%- endmacro %}

{# SQL condition on a row of `role` with naive UTC time `time_column`: it lies in the part of `target` this build
   recomputes (see above), read from the current (old) state of `target`. #}
{% macro _split_rebuild_rows(target, time_column, role, in_target=false) -%}
    {%- set cfg = config.get('split_rebuild') -%}
    {%- set held = cfg.get('splits', ['train', 'valid', 'test']) -%}
    {#- `column` (optional): the table's timestamptz column behind `time`; aggregated as is and made naive UTC after
        (converting `time` per row costs a pass over the table), and the delete (`in_target`) compares the column
        itself with the bounds made timestamptz. -#}
    {%- set column = cfg.get('column') -%}
    {%- if cfg['role'] is none -%}
        {%- set rows_of_role = "role = 'pretrain'" if role == 'pretrain' else "role <> 'pretrain'" -%}
    {%- else -%}
        {%- set rows_of_role = 'true' -%}
    {%- endif -%}
    {%- set compared = column if (in_target and column) else time_column -%}
    {%- set parts = ['(select count(*) from ' ~ target ~ ' where ' ~ rows_of_role ~ ') = 0'] -%}
    {%- if var('days_from', none) is not none -%}
        {%- do parts.append(compared ~ ' >= ' ~ _day_bound('days_from', 0, in_target and column)) -%}
    {%- endif -%}
    {%- for cut, below, above, splits in _split_cuts_of(role) -%}
        {%- if held | select('in', splits) | list | length > 0 -%}
            {%- if column -%}
                {%- set lower = "timezone('UTC', max(" ~ column ~ ") filter (where " ~ below ~ "))" -%}
                {%- set upper = "timezone('UTC', min(" ~ column ~ ") filter (where " ~ above ~ "))" -%}
            {%- else -%}
                {%- set lower = 'max(' ~ cfg['time'] ~ ') filter (where ' ~ below ~ ')' -%}
                {%- set upper = 'min(' ~ cfg['time'] ~ ') filter (where ' ~ above ~ ')' -%}
            {%- endif -%}
            {%- set bounds = lower ~ ', ' ~ upper ~ ', (select ' ~ cut ~ ' from ' ~ ref('int_split_cuts') ~ ')) from '
                ~ target ~ ' where ' ~ rows_of_role -%}
            {%- set lo = '(select least(' ~ bounds ~ ')' -%}
            {%- set hi = '(select greatest(' ~ bounds ~ ')' -%}
            {%- if in_target and column -%}
                {%- set lo, hi = "timezone('UTC', " ~ lo ~ ")", "timezone('UTC', " ~ hi ~ ")" -%}
            {%- endif -%}
            {%- do parts.append(compared ~ ' between ' ~ lo ~ ' and ' ~ hi) -%}
        {%- endif -%}
    {%- endfor -%}
    ({{ parts | join(' or ') }})
{%- endmacro %}

{# SQL condition on rows with naive UTC time `time_column` and role `role_column`: the row lies in the part of the
   table this build recomputes (see above); `true` without an active day window. #}
{% macro split_rebuild_condition(target, time_column, role_column, in_target=false) -%}
    {%- set cfg = config.get('split_rebuild') -%}
    {%- if not (day_window_active() and cfg is mapping) -%}
        true
    {%- elif cfg['role'] is not none -%}
        {{ _split_rebuild_rows(target, time_column, cfg['role'], in_target) }}
    {%- else -%}
        (case when {{ role_column }} = 'pretrain'
            then {{ _split_rebuild_rows(target, time_column, 'pretrain', in_target) }}
            else {{ _split_rebuild_rows(target, time_column, 'coldstart', in_target) }} end)
    {%- endif -%}
{%- endmacro %}

{# Incremental strategy `split_rebuild`: replace the recomputed part of the table (the whole table without a
   window). The condition reads the table's old state, as the model's select did. #}
{% macro get_incremental_split_rebuild_sql(arg_dict) %}
    {%- set target = arg_dict['target_relation'] -%}
    {{ replace_rows_where(arg_dict, split_rebuild_condition(target, config.get('split_rebuild')['time'], 'role',
                                                       in_target=true)) }}
{% endmacro %}
