"""The embedded local stack: moto as AWS, the real state machine, the real handlers, in one process.

stack.py provisions and runs it (``MotoStack``); invoker.py runs the Lambdas in-process;
patches/ holds dagcast's patches to moto internals; poller.py stands in for the DynamoDB stream →
fan-out event source mapping; process.py runs the stack in a child process for ``dagcast up``.
Nothing here serves HTTP (dagcast/local/server.py does) or talks to LocalStack (localstack/).
"""
