import { describe, expect, it } from "vitest";
import { csvField, parseCsv, toCsv } from "../../src/lib/csv";

describe("csv", () => {
  it("quotes only what RFC 4180 requires", () => {
    expect(csvField("plain")).toBe("plain");
    expect(csvField("a,b")).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField("two\nlines")).toBe('"two\nlines"');
    expect(csvField("cr\rhere")).toBe('"cr\rhere"');
    expect(csvField(null)).toBe("");
    expect(csvField("")).toBe("");
  });

  it("writes numbers so they parse back to the same double", () => {
    const values = [0.1, 1 / 3, 1e-7, 123456789.123, -0, 2 ** 53 + 2, 5e-324, NaN];
    const csv = toCsv([values]);
    const back = parseCsv(csv)[0].map(Number);
    expect(back.length).toBe(values.length);
    back.forEach((v, i) => expect(Object.is(v, values[i]) || (v === 0 && values[i] === 0)).toBe(true));
  });

  it("ends every record with CRLF and round-trips through parseCsv", () => {
    const rows = [
      ["run", "path", "note"],
      ["abc", "team/a,b", 'he said "x"\r\nthen left'],
      ["def", "", null],
    ];
    const csv = toCsv(rows);
    expect(csv.endsWith("\r\n")).toBe(true);
    expect(csv.split("\r\n")[0]).toBe("run,path,note");
    expect(parseCsv(csv)).toEqual(rows.map((r) => r.map((c) => (c === null ? "" : c))));
    expect(toCsv([])).toBe("");
  });
});
