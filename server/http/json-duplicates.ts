/**
 * I-JSON (RFC 7493 §2.3): object member names MUST be unique. JSON.parse silently keeps the last
 * of two equal names, while another parser on the way (a proxy, a WAF, the client's own logging)
 * may keep the first — so a body with a duplicate name is refused rather than guessed at.
 *
 * Runs on text that JSON.parse accepted: a string token is consumed whole, so brackets inside
 * strings are never seen; a string followed by `:` is a member name.
 */
const TOKEN = /"(?:[^"\\]|\\.)*"|[{}[\]]/g;
const COLON = /\s*:/y;

/** The first member name that occurs twice in one object, or undefined. */
export function duplicateMemberName(text: string): string | undefined {
  const stack: (Set<string> | null)[] = [];
  TOKEN.lastIndex = 0;
  for (let m = TOKEN.exec(text); m; m = TOKEN.exec(text)) {
    const t = m[0];
    if (t === '{') stack.push(new Set());
    else if (t === '[') stack.push(null);
    else if (t === '}' || t === ']') stack.pop();
    else {
      const names = stack[stack.length - 1];
      COLON.lastIndex = TOKEN.lastIndex;
      if (!names || !COLON.test(text)) continue;
      const name = JSON.parse(t) as string; // "\u006bey" and "key" are the same name
      if (names.has(name)) return name;
      names.add(name);
    }
  }
  return undefined;
}
