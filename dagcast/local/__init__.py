"""The embedded local stack: moto as AWS, the real state machine, the real handlers, in one process."""
