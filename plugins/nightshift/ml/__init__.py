"""Layer `ml`: metrics, drift statistics, governance maths, modelling helpers. Plain numpy/scikit-learn, no I/O."""
