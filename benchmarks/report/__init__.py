"""The report of a results directory: reading runs, the leaderboard tables, figures and their inputs, the
HTML and LaTeX writers, and the claims checked against the numbers."""
