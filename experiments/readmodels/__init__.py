"""What the console and the reports read: every query over the store, as immutable typed records, one
module per subject.

- `catalog`: pilots and experiments as registered;
- `exposure`: experiment results, exposure pace and the monitoring history;
- `adoption`: adoption, reach, retention and the forecast's inputs;
- `voice`: the citizens' voice (feedback figures, comments, ideas);
- `portfolio`: evidence, recommendations and the portfolio across pilots.

The workers write their figures per Kafka partition; every query sums the partitions in SQL (GROUP BY),
on SQLite and PostgreSQL alike. Statistics are recomputed from the stored sufficient statistics with the
stats engine (`experiments.results.build_results`), never from raw events.
"""
