// How the pages write times.

/** Seconds as `90 s`, `12 min`, `5 h`, `3 days`. */
export function duration(secs: number | null | undefined): string {
  if (secs === null || secs === undefined) return "—";
  if (secs < 120) return `${secs} s`;
  if (secs < 7200) return `${Math.round(secs / 60)} min`;
  if (secs < 172800) return `${Math.round(secs / 3600)} h`;
  return `${Math.round(secs / 86400)} days`;
}
