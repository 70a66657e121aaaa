using System.Globalization;
using System.Text;

namespace ClipSharp.Text;

/// <summary>
/// HTML character-reference decoding with the semantics of Python's <c>html.unescape</c>
/// (HTML5 named references, the legacy names that work without a trailing semicolon,
/// longest-prefix matching, numeric references with the HTML5 replacement rules) and of
/// ftfy's stricter entity pass (only complete <c>&amp;name;</c> / <c>&amp;#n;</c> references).
/// </summary>
internal static class PythonHtml
{
    static readonly Dictionary<string, string> Html5 = Pairs(UnicodeTables.Html5Entities);
    static readonly Dictionary<string, string> FtfyUpper = Pairs(UnicodeTables.FtfyUppercaseEntities);
    static readonly Dictionary<int, string> InvalidCharrefs = BuildInvalidCharrefs();
    static readonly HashSet<int> InvalidCodepoints = [.. UnicodeTables.HtmlInvalidCodepoints];

    static Dictionary<string, string> Pairs(string[] flat)
    {
        var d = new Dictionary<string, string>(flat.Length / 2, StringComparer.Ordinal);
        for (int i = 0; i < flat.Length; i += 2) d[flat[i]] = flat[i + 1];
        return d;
    }

    static Dictionary<int, string> BuildInvalidCharrefs()
    {
        var d = new Dictionary<int, string>();
        var t = UnicodeTables.HtmlInvalidCharrefs;
        for (int i = 0; i < t.Length; i += 2) d[t[i][0]] = t[i + 1];
        return d;
    }

    /// <summary>The Windows-1252 reading of bytes 0x80–0x9F, keeping the five undefined bytes as C1 characters ("sloppy" Windows-1252).</summary>
    public static char SloppyCp1252High(int b) => InvalidCharrefs[b][0];

    /// <summary>Python <c>html.unescape(s)</c>.</summary>
    public static string Unescape(string s)
    {
        int amp = s.IndexOf('&');
        if (amp < 0) return s;
        var sb = new StringBuilder(s.Length);
        sb.Append(s, 0, amp);
        int i = amp;
        while (i < s.Length)
        {
            if (s[i] != '&') { sb.Append(s[i++]); continue; }
            int consumed = TryCharref(s, i, sb);
            if (consumed == 0) { sb.Append('&'); i++; }
            else i += consumed;
        }
        return sb.ToString();
    }

    // Matches &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?) at i and appends the replacement.
    static int TryCharref(string s, int i, StringBuilder sb)
    {
        int j = i + 1;
        if (j >= s.Length) return 0;
        if (s[j] == '#')
        {
            int k = j + 1;
            bool hex = k < s.Length && (s[k] == 'x' || s[k] == 'X');
            if (hex) k++;
            int start = k;
            while (k < s.Length && (hex ? char.IsAsciiHexDigit(s[k]) : char.IsAsciiDigit(s[k]))) k++;
            if (k == start) return 0;
            var digits = s.AsSpan(start, k - start);
            if (k < s.Length && s[k] == ';') k++;
            sb.Append(NumericReplacement(digits, hex));
            return k - i;
        }
        else
        {
            int k = j;
            while (k < s.Length && k - j < 32 && s[k] is not ('\t' or '\n' or '\f' or ' ' or '<' or '&' or '#' or ';')) k++;
            if (k == j) return 0;
            if (k < s.Length && s[k] == ';') k++;
            string name = s.Substring(j, k - j);
            if (Html5.TryGetValue(name, out var value)) { sb.Append(value); return k - i; }
            for (int x = name.Length - 1; x > 1; x--)
            {
                if (Html5.TryGetValue(name[..x], out var prefixValue))
                {
                    sb.Append(prefixValue).Append(name, x, name.Length - x);
                    return k - i;
                }
            }
            sb.Append('&').Append(name);
            return k - i;
        }
    }

    static string NumericReplacement(ReadOnlySpan<char> digits, bool hex)
    {
        var trimmed = digits.TrimStart('0');
        long num;
        if (trimmed.Length > 8) num = long.MaxValue; // certainly beyond U+10FFFF
        else if (trimmed.Length == 0) num = 0;
        else num = long.Parse(trimmed, hex ? NumberStyles.AllowHexSpecifier : NumberStyles.None, CultureInfo.InvariantCulture);
        if (num <= int.MaxValue && InvalidCharrefs.TryGetValue((int)num, out var fixedUp)) return fixedUp;
        if (num is >= 0xD800 and <= 0xDFFF || num > 0x10FFFF) return "\uFFFD";
        if (InvalidCodepoints.Contains((int)num)) return "";
        return char.ConvertFromUtf32((int)num);
    }

    /// <summary>
    /// ftfy's <c>unescape_html</c>: replaces each match of <c>&amp;#?[0-9A-Za-z]{1,24};</c> that is a known
    /// HTML5 entity (or an all-uppercase spelling of a lowercase one), or a numeric reference that
    /// <see cref="Unescape"/> fully consumes; leaves everything else alone.
    /// </summary>
    public static string FtfyUnescape(string s)
    {
        int amp = s.IndexOf('&');
        if (amp < 0) return s;
        var sb = new StringBuilder(s.Length);
        sb.Append(s, 0, amp);
        int i = amp;
        while (i < s.Length)
        {
            if (s[i] == '&')
            {
                int k = i + 1;
                if (k < s.Length && s[k] == '#') k++;
                int start = k;
                while (k < s.Length && k - start < 24 && char.IsAsciiLetterOrDigit(s[k])) k++;
                if (k > start && k < s.Length && s[k] == ';')
                {
                    string entity = s.Substring(i, k + 1 - i);
                    string? replacement = null;
                    if (Html5.TryGetValue(entity[1..], out var v)) replacement = v;
                    else if (FtfyUpper.TryGetValue(entity[1..], out var u)) replacement = u;
                    else if (entity.StartsWith("&#", StringComparison.Ordinal))
                    {
                        var unescaped = Unescape(entity);
                        if (!unescaped.Contains(';')) replacement = unescaped;
                    }
                    sb.Append(replacement ?? entity);
                    i = k + 1;
                    continue;
                }
            }
            sb.Append(s[i++]);
        }
        return sb.ToString();
    }
}
