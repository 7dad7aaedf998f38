"""What AWS does around the APIs that moto answers, done locally.

moto stores Lambda functions, event source mappings, rules, schedules and
state machines, but it cannot run a function without a container engine and
delivers few events the way AWS does. This package runs the real handler
binaries a function's deployed code holds, under its execution role, and
performs the deliveries AWS performs (see README.md beside it for the list of
which are done here and which by moto).
"""
