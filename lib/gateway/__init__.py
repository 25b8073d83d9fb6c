"""rbAmp gateway firmware: metering, energy journal, MQTT publishing (the application is still
being written; so far only the energy journal lives here).

Importing this package does nothing; import the submodule you need. The energy journal keeps
the totals across power cuts without wearing the flash out::

    from gateway.store import EnergyStore, JournalFormatError
    from gateway.commit_policy import CommitPolicy

    bdev = esp32.Partition.find(esp32.Partition.TYPE_DATA, label="journal")[0]
    # rp2: rp2.Flash(start=..., len=...); stock firmware or PC:
    # gateway.flashdev.FileBlockDevice("/journal.bin", 4096, 16)
    store = EnergyStore(bdev, channels=2)
    state = store.load()                       # None on a blank device
    totals = state.totals if state else [0] * store.counters   # mWh: import, export per channel
    policy = CommitPolicy(store.counters)
    policy.committed(totals, state.backlog_seq if state else 0)

    # after each metering step:
    reason = policy.due(totals)
    if reason:
        store.commit(totals, reason=reason)    # returns once the record is durable
        policy.committed(totals)
    store.prepare()                            # when idle: erase ahead, off the critical path
"""
