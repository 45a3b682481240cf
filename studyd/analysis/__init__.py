"""The analysis side: what a study's trials say (verdict, evidence, importances, canonical)."""
