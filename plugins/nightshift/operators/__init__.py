"""Layer `operators`: one small Airflow operator per pipeline step, each calling a plain step function.

Importable at DAG parse time: heavy libraries load inside `execute`. Public, so a hand-written DAG
can use them without a YAML spec (docs/operators.md).
"""
