{#
Which rows the data tests read. A full build tests every row. A day-window build (vars days_from / days_to, a daily
tick or a range backfill) tests the rows it rebuilt: each incremental model's own window (its config's
`test_window`, else its `day_window`), so a tick's tests cost what its day costs, not what the history costs. The
var `test_scope: all` tests every row on a window build too: the weekly full retrain passes it
(orchestration/assets/warehouse.py), so nothing goes untested for more than a week.

Generic tests (unique, not_null, relationships, ...) get the window through dbt's `where` mechanism: the
`get_where_subquery` override below wraps the tested model in `(select * from model where <its window>)`. Singular
tests filter their rows with `tested_from()` themselves; the row-conservation tests stay global.
#}

{# Whether this run's data tests look only at the rows the day window rebuilt. #}
{% macro tests_window_only() -%}
    {{ return(day_window_vars_set() and var('test_scope', 'window') == 'window') }}
{%- endmacro %}

{# The first day a window-only test looks at, `start` days from days_from, as a SQL date; none when every row is
   tested. #}
{% macro tested_from(start=0) -%}
    {%- if tests_window_only() and var('days_from', none) is not none -%}
        {{ return(_day_bound('days_from', start, false)) }}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}

{# The tested model's window as a SQL condition, or none: the model `relation` names among this test's
   dependencies, when it declares a `test_window` or `day_window` config and tests are window-only. #}
{% macro tested_window_of(relation) -%}
    {%- if not (execute and tests_window_only()) -%}
        {{ return(none) }}
    {%- endif -%}
    {%- for node_id in model.depends_on.nodes -%}
        {%- set node = graph.nodes.get(node_id) -%}
        {%- if node and node.alias == relation.identifier -%}
            {%- set w = node.config.get('test_window') or node.config.get('day_window') -%}
            {%- if w is mapping -%}
                {{ return(in_day_window(w['column'], w.get('start', 0), w.get('end', 0), w.get('timestamp', false),
                                        active=true)) }}
            {%- endif -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(none) }}
{%- endmacro %}

{# dbt's hook for a generic test's `where` config (dbt-core: get_where_subquery), extended with the model's tested
   window; with neither, the model itself. #}
{% macro get_where_subquery(relation) -%}
    {%- set conditions = [] -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- do conditions.append('(' ~ where ~ ')') -%}
    {%- endif -%}
    {%- set window = tested_window_of(relation) -%}
    {%- if window -%}
        {%- do conditions.append(window) -%}
    {%- endif -%}
    {%- if conditions -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ (conditions | join(' and ')) ~ ') dbt_subquery') -%}
    {%- endif -%}
    {%- do return(relation) -%}
{%- endmacro %}
