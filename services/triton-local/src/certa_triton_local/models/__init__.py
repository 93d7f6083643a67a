"""Python-backend models of the generated repository (imported by each model's generated `model.py`)."""
