"""What the tests share and are not tests themselves: job builders (jobs), the kind plugin the jobs
load (plugins), a webhook receiver (receiver), hypothesis strategies (strategies), and the chaos
harnesses (chaos, chaos_tasks, chaos_stream; `make chaos` runs chaos_run and chaos_stream)."""
