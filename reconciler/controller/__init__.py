"""The GitOps controller (``pipeform controller``): a loop that pulls a spec repository,
plans, and applies on each new commit and on drift; its webhook, health, metrics and
read-only status page. It sits above the engine and reuses its session, lock, plan,
apply and journal."""
