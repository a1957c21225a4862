"""Running a job on Step Functions: submission, the state machine's steps, attempts, releases and
the read views. Import from the modules (engine, views, submission, …); nothing is re-exported."""
