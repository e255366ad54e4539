"""The core every strategy is built from: operations on candidates, budgets, selection."""
