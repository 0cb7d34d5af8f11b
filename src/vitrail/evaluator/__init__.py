"""The template evaluator: templates in, deduced alarms, states and causes out.

``model`` is what a loaded template is; ``templates`` parses and validates
Vitrage's template language into it; ``matching`` finds scenario matches around
a vertex; ``engine`` keeps every scenario's actions true to the graph, inside
the processor's fold.
"""
