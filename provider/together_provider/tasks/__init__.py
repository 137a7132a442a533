"""The task side: what operators and sensors share (the operator base, the wait, the outcome, submission,
storage, lineage and asset events). Internal; ``hooks/`` and ``triggers/`` never import it."""
