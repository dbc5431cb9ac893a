"""The benchmark wing: suites of searches, result rows, regret and leaderboards.

``suite`` runs a suite file's tasks (oracle grid, autotl's search, fixed baselines) into
result rows; ``results`` is the row schema (read, validate, write, merge, rows from study
storages); ``regret`` compares methods with the oracle; ``leaderboard`` renders the tables and
plots. Nothing here imports torch until a suite actually trains.
"""
