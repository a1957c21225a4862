"""`dagcast deploy` / `dagcast destroy`: Chalice and template.yaml, in the right order.

The package: deployer.py (the steps below, and the command line's entry), commands.py (running
the tools), stage.py (a stage's names and settings), and one module per thing a deploy settles —
iam.py (a policy per function), concurrency.py (the reserved-concurrency budget), alarms.py
(where alarms notify), sse_profiles.py, throttle.py (the REST stage's rate limit), versions.py
(the state machine's pinned function versions), bundle.py and regions.py (the SSE bundle, the
runtime, the partition and Web Adapter layer per region), preflight.py (the checks before any
change), retained.py (what destroy keeps).

deploy:
  1. stop, changing nothing, if a table dagcast-S exists that the stack does not hold (`destroy`
     keeps it), if chalice does not run on Python 3.13 (dagcast/deploy/bundle.py), or if the stage's
     reserved concurrency does not fit the account (dagcast/deploy/concurrency.py)
  2. write the stage's settings into .chalice/config.json (state machine ARN for this account and
     region; a new stage is made from `dev` with its names replaced) and each function's policy
     file (dagcast/deploy/iam.py)
  3. chalice deploy --stage S                 REST API, task Lambdas, fan-out, webhook retry
  4. the API's log retention (Chalice 1.34 puts it on a log group named after `api_handler`, not
     the function's /aws/lambda/dagcast-S, so the stages switch it off there and it is set here)
  5. build/sse + sam deploy (stack dagcast-S) table, stream, state machine, SSE function URL, the
                                              stream → fan-out mapping, secret, KMS key, alarms —
                                              with the Lambda ARNs Chalice just deployed and the
                                              SSE profile's parameters (dagcast/deploy/sse_profiles.py);
                                              first a version of each function the state machine
                                              invokes (dagcast/deploy/versions.py: running executions
                                              keep theirs)
  6. read the stack's outputs: the names the stage uses must be the stack's (STAGE_OUTPUTS; a
     difference stops the deploy); when EventsUrl changed, write DAGCAST_EVENTS_URL into the stage
     and chalice deploy again (the API hands that URL to clients)
  7. aws apigateway update-stage             the REST API's stage throttling, after the last chalice
                                              deploy (dagcast/deploy/throttle.py: the REST rate limit that
                                              holds across Lambda instances)
destroy: sam delete, then chalice delete. The table and the webhook key are kept (dagcast/deploy/retained.py
says which, by name, and how to delete them) unless --delete-data.

Every command is printed before it runs; ``--dry-run`` prints the plan and changes nothing.
"""
