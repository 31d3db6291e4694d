/**
 * CSV writing shared by every "Export CSV" button of the dashboard.
 *
 * Owns the CSV format of the UI's exports: RFC 4180 (fields separated by commas, records by
 * CRLF, a field quoted when it holds a comma, a quote, CR or LF, quotes doubled inside), numbers
 * written exactly as JavaScript round-trips them (`String(n)`: the shortest text that parses back
 * to the same double, so a CSV read back equals the API's numbers), `null` as an empty field.
 * Also the browser download of such a text.
 */

/** One CSV field: text, a number (written round-trip exact) or null (an empty field). */
export type CsvCell = string | number | null;

/** Writes one field, quoted only when RFC 4180 requires it. */
export function csvField(cell: CsvCell): string {
  if (cell === null) return "";
  const text = typeof cell === "number" ? String(cell) : cell;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** Writes rows (the first usually the header) as CSV text; every record ends with CRLF. */
export function toCsv(rows: CsvCell[][]): string {
  let out = "";
  for (const row of rows) out += row.map(csvField).join(",") + "\r\n";
  return out;
}

/**
 * Parses CSV text written by `toCsv` (or any RFC 4180 text) back into rows of strings; used by
 * the tests to read an export back, and handy for checking a file by hand.
 */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i += 2;
        continue;
      }
      if (c === '"') quoted = false;
      else field += c;
      i += 1;
      continue;
    }
    if (c === '"') quoted = true;
    else if (c === ",") {
      row.push(field);
      field = "";
    } else if (c === "\r" || c === "\n") {
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
      if (c === "\r" && text[i + 1] === "\n") i += 1;
    } else field += c;
    i += 1;
  }
  if (field !== "" || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

/** Offers `csv` to the user as a download named `name` (".csv" added when missing). */
export function downloadCsv(name: string, csv: string): void {
  const file = name.toLowerCase().endsWith(".csv") ? name : `${name}.csv`;
  const url = URL.createObjectURL(new Blob([csv], { type: "text/csv;charset=utf-8" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = file;
  a.style.display = "none";
  document.body.append(a);
  a.click();
  a.remove();
  // Revoke after the click has been handled; the download keeps its own reference.
  setTimeout(() => URL.revokeObjectURL(url), 0);
}
