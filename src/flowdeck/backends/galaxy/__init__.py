"""The ``galaxy`` backend: workflows stored in a Galaxy server, run through BioBlend.

``backend`` is the backend (submit, sync, cancel); ``client`` the Galaxy API calls and their
errors; ``inputs`` how a run names its workflow and datasets; ``state`` Galaxy's states read as
run states; ``sync`` reading invocations, batched or one by one. Importing this package loads no
Galaxy client: BioBlend waits for a configured Galaxy (the registry names ``backend``).
"""
