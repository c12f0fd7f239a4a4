"""The retrain wing: dataset check, training jobs in child processes, curves, compare, promote."""
