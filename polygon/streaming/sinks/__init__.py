"""Sinks: publish every event a client receives to a broker, for many consumers.

The service allows one connection per cluster and account. To feed many
processes or machines, one client holds the connection and a sink publishes
each event once to a broker they all read from:

- ``RedisStreamsSink`` in ``polygon.streaming.sinks.redis`` (extra ``redis``)
- ``NatsJetStreamSink`` in ``polygon.streaming.sinks.nats`` (extra ``nats``)

Attach one with ``client.add_sink(sink)``. The broker modules import their
client libraries only when used, so this package imports without them.
"""

from polygon.streaming.sinks._base import BufferedSink, Sink, SinkStats

__all__ = ["BufferedSink", "Sink", "SinkStats"]
