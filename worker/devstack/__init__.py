"""The local stack for tests, the demo and the benchmark: moto (SQS, DynamoDB) and the sandbox.

Not used by ``sms-worker run`` itself; needs the ``test`` extra (moto).
"""
