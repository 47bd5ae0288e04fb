"""Evaluation: the report's metrics (`metrics`), task lookup (`tasks`) and the eval runner."""
