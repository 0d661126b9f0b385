"""The pure core: clock model and estimation math, with no I/O and no protocol.

Following chrony's split, one concern a module:

- `clock`: the software clock and its discipline (slew, step, never backwards);
- `measurement`: an *exchange*, the four timestamps of one request and answer, and the
  offset and delay they give;
- `bounds`: how far an exchange's offset can be from the truth, whatever the delays;
- `sample`: a *sample*, one exchange as evidence about a peer's clock: its offset, delay and
  error bound, and which request it answered;
- `selection`: choosing among samples and clocks: the lowest-delay sample, the
  fault-tolerant average of Berkeley's algorithm, and the corrections it implies.
"""
