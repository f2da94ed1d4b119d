"""Sinks: publish every event a client receives to a broker, for many consumers.

The service allows one connection per cluster and account. To feed many
processes or machines, one client holds the connection and a sink publishes
each event once to a broker they all read from:

- :class:`~polygon.streaming.sinks.redis.RedisStreamsSink` in
  :mod:`polygon.streaming.sinks.redis` (extra ``redis``), read back with
  :class:`~polygon.streaming.sinks.redis.RedisStreamsConsumer`;
- :class:`~polygon.streaming.sinks.nats.NatsJetStreamSink` in
  :mod:`polygon.streaming.sinks.nats` (extra ``nats``), read back with
  :class:`~polygon.streaming.sinks.nats.NatsJetStreamConsumer`.

Attach one with ``client.add_sink(sink)``. The broker modules import their
client libraries only when used, so this package imports without them.
See :doc:`/scaling` for how to run one publisher and many consumers.
"""

from polygon.streaming.sinks._base import BufferedSink, Sink, SinkStats

__all__ = ["BufferedSink", "Sink", "SinkStats"]
