"""Aggregation-aware RL: training data (`data`), rewards (`rewards`), TRL training on one
machine (`train`) and a verl launch script for clusters (`verl`). See docs/RL.md.

Submodules import their heavy dependencies (torch, transformers, TRL, pyarrow) lazily, so
`recursa.rl.rewards` stays importable wherever recursa is installed (verl's reward workers)."""
