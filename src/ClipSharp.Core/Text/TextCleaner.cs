using System.Text;

namespace ClipSharp.Text;

/// <summary>
/// The text normalisation the reference CLIP tokenizer applies before pre-tokenisation:
/// ftfy <c>fix_text</c> (default settings of ftfy 6.3.1), <c>html.unescape</c> twice, strip,
/// collapse every run of whitespace to one space, strip, and Python <c>str.lower()</c>.
/// </summary>
/// <remarks>
/// <para>Reproduced from ftfy's default <c>fix_text</c>, in ftfy's order and repeated until the text
/// stops changing, per line:</para>
/// <list type="bullet">
/// <item>HTML entity decoding (complete references only), skipped for the rest of the text once a line contains <c>&lt;</c>;</item>
/// <item>mojibake repair: text that is entirely encodable as Latin-1 or "sloppy" Windows-1252 and contains
/// a sequence that looks like UTF-8 read in one of those code pages is re-encoded and decoded as UTF-8
/// (repeatedly, so doubly encoded text is repaired too); Latin-1 text that is not valid Windows-1252 is
/// re-read as Windows-1252; remaining C1 controls are read as Windows-1252;</item>
/// <item>Latin ligature and digraph expansion (ﬁ → fi, Ǆ → DŽ, …);</item>
/// <item>fullwidth and halfwidth forms (U+FF01–U+FFEF) to their NFKC equivalents, U+3000 to a space;</item>
/// <item>curly quotes (U+02BC, U+2018–U+201B, U+201C–U+201F) to ASCII quotes;</item>
/// <item>line breaks (CR LF, CR, U+2028, U+2029, U+0085) to LF; lone surrogates to U+FFFD;</item>
/// <item>ANSI terminal escapes (<c>ESC [ digits/semicolons letter</c>);</item>
/// <item>control characters U+0000–U+0008, U+000B, U+000E–U+001F, U+007F, U+206A–U+206F, U+FEFF, U+FFF9–U+FFFC;</item>
/// <item>NFC normalisation.</item>
/// </list>
/// <para>Not implemented (documented deviations from ftfy): ftfy's statistical "badness" score is
/// replaced by the simpler UTF-8-lookalike test above; mojibake through other code pages
/// (Windows-1250/1251/1253/1254/1257, ISO-8859-2, MacRoman, CP437) is not repaired;
/// <c>restore_byte_a0</c> (UTF-8 whose 0xA0 bytes became spaces), <c>replace_lossy_sequences</c>,
/// <c>decode_inconsistent_utf8</c> (mojibake mixed with correct text) and the CESU-8 / Java
/// "utf-8-variants" decoder are not implemented, so such text is left as it is.
/// Character properties come from Python 3.11's Unicode 14.0 database.</para>
/// </remarks>
internal static class TextCleaner
{
    const int MaxSegmentLength = 1_000_000;

    /// <summary>
    /// The full reference pipeline: <see cref="FixText"/>, <c>html.unescape</c> twice, strip,
    /// collapse whitespace, strip, Python lower-case. The result is exactly the string the
    /// pre-tokenizer regex sees.
    /// </summary>
    /// <param name="text">Raw input text.</param>
    /// <returns>The cleaned, lower-cased text.</returns>
    public static string Clean(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string s = FixText(text);
        s = PythonHtml.Unescape(PythonHtml.Unescape(s));
        s = CollapseWhitespace(s);
        return UnicodeText.PythonLower(s);
    }

    /// <summary>
    /// Replaces every run of whitespace (the Python <c>regex</c> module's <c>\s</c>: Unicode White_Space,
    /// so NBSP, U+2000–U+200A, U+3000 … but not U+200B) with one space and trims the ends.
    /// </summary>
    /// <param name="text">Input text.</param>
    /// <returns>The text with whitespace collapsed and trimmed.</returns>
    public static string CollapseWhitespace(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        // Fast path: no whitespace other than single interior spaces.
        bool clean = text.Length == 0 || (text[0] != ' ' && text[^1] != ' ');
        for (int i = 0; clean && i < text.Length; i++)
        {
            char c = text[i];
            if (c == ' ') { if (text[i + 1] == ' ') clean = false; }
            else if (c < 0x80 ? c is (>= '\t' and <= '\r') or (>= '\x1c' and <= '\x1f') : UnicodeText.IsWhitespace(c)) clean = false;
        }
        if (clean) return text;

        var sb = new StringBuilder(text.Length);
        bool pendingSpace = false;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            // Whitespace code points are all in the BMP, so checking UTF-16 units is exact.
            if (UnicodeText.IsWhitespace(c)) { pendingSpace = sb.Length > 0; continue; }
            if (pendingSpace) { sb.Append(' '); pendingSpace = false; }
            sb.Append(c);
        }
        return sb.ToString();
    }

    /// <summary>
    /// ftfy <c>fix_text</c> with its default configuration (see the class remarks for what is and is
    /// not reproduced).
    /// </summary>
    /// <param name="text">Input text.</param>
    /// <returns>The fixed text.</returns>
    public static string FixText(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (IsPlainAscii(text)) return text;
        bool unescapeHtml = true;
        var output = new StringBuilder(text.Length);
        int pos = 0;
        while (pos < text.Length)
        {
            int brk = text.IndexOf('\n', pos) + 1;
            if (brk == 0) brk = text.Length;
            if (brk - pos > MaxSegmentLength) brk = pos + MaxSegmentLength;
            string segment = text.Substring(pos, brk - pos);
            if (unescapeHtml && segment.Contains('<')) unescapeHtml = false;
            output.Append(FixSegment(segment, unescapeHtml));
            pos = brk;
        }
        return output.ToString();
    }

    // Text that no ftfy step can change: printable ASCII plus tab, LF and FF, without '&'.
    static bool IsPlainAscii(string text)
    {
        foreach (char c in text)
        {
            if (c is >= ' ' and < '\x7f') { if (c == '&') return false; }
            else if (c is not ('\t' or '\n' or '\f')) return false;
        }
        return true;
    }

    static string FixSegment(string text, bool unescapeHtml)
    {
        while (true)
        {
            string orig = text;
            if (unescapeHtml) text = PythonHtml.FtfyUnescape(text);
            text = FixEncoding(text);
            text = FixC1Controls(text);
            text = Translate(text, LatinLigature);
            text = Translate(text, UnicodeText.WidthReplacement);
            text = UncurlQuotes(text);
            text = FixLineBreaks(text);
            text = FixSurrogates(text);
            text = RemoveTerminalEscapes(text);
            text = RemoveControlChars(text);
            text = UnicodeText.Nfc(text);
            if (text == orig) return text;
        }
    }

    // ---- mojibake ------------------------------------------------------------------------

    static string FixEncoding(string text)
    {
        while (true)
        {
            string next = FixEncodingOneStep(text);
            if (next == text) return text;
            text = next;
        }
    }

    static string FixEncodingOneStep(string text)
    {
        if (text.Length == 0 || IsAscii(text) || !LooksLikeMojibake(text)) return text;

        bool latin1 = TryEncodeLatin1(text, out var latin1Bytes);
        if (latin1 && TryDecodeUtf8(latin1Bytes!, out var fixedLatin1)) return fixedLatin1!;
        bool cp1252 = TryEncodeSloppyCp1252(text, out var cpBytes);
        if (cp1252 && TryDecodeUtf8(cpBytes!, out var fixedCp)) return fixedCp!;

        if (latin1)
        {
            if (IsStrictCp1252Text(text)) return text;
            // Latin-1 with C1 controls: read those bytes as Windows-1252 (strictly: undefined bytes fail).
            var sb = new StringBuilder(text.Length);
            foreach (char c in text)
            {
                if (c is >= '\x80' and <= '\x9f')
                {
                    char m = PythonHtml.SloppyCp1252High(c);
                    if (m == c) { sb = null; break; }
                    sb.Append(m);
                }
                else sb.Append(c);
            }
            if (sb != null) return sb.ToString();
        }
        return FixC1Controls(text);
    }

    static bool IsAscii(string s)
    {
        foreach (char c in s) if (c >= 0x80) return false;
        return true;
    }

    static readonly Dictionary<char, byte> Cp1252Reverse = BuildCp1252Reverse();

    static Dictionary<char, byte> BuildCp1252Reverse()
    {
        var d = new Dictionary<char, byte>();
        for (int b = 0x80; b < 0x100; b++) d[b < 0xA0 ? PythonHtml.SloppyCp1252High(b) : (char)b] = (byte)b;
        return d;
    }

    // The byte a character stands for in sloppy Windows-1252, or -1.
    static int SloppyCp1252Byte(char c)
    {
        if (c < 0x80) return c == '\x1a' ? -1 : c;
        if (c == '\uFFFD') return 0x1A;
        return Cp1252Reverse.TryGetValue(c, out var b) ? b : -1;
    }

    static bool IsStrictCp1252Text(string text)
    {
        foreach (char c in text)
        {
            if (c < 0x80 || c >= 0xA0 && c <= 0xFF) continue;
            if (!Cp1252Reverse.TryGetValue(c, out var b) || PythonHtml.SloppyCp1252High(b) == b) return false;
        }
        return true;
    }

    static bool IsContinuation(char c)
    {
        if (c is >= '\x80' and <= '\xbf') return true;
        int b = SloppyCp1252Byte(c);
        return b is >= 0x80 and <= 0xBF;
    }

    // A character that reads as a UTF-8 lead byte (Latin-1 / Windows-1252 0xC2–0xF4) followed by the
    // right number of characters that read as continuation bytes.
    static bool LooksLikeMojibake(string text)
    {
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            int need = c switch
            {
                >= '\xc2' and <= '\xdf' => 1,
                >= '\xe0' and <= '\xef' => 2,
                >= '\xf0' and <= '\xf4' => 3,
                _ => 0,
            };
            if (need == 0 || i + need >= text.Length) continue;
            bool ok = true;
            for (int k = 1; k <= need && ok; k++) ok = IsContinuation(text[i + k]);
            if (ok) return true;
        }
        return false;
    }

    static bool TryEncodeLatin1(string text, out byte[]? bytes)
    {
        bytes = null;
        foreach (char c in text) if (c > 0xFF) return false;
        bytes = new byte[text.Length];
        for (int i = 0; i < text.Length; i++) bytes[i] = (byte)text[i];
        return true;
    }

    static bool TryEncodeSloppyCp1252(string text, out byte[]? bytes)
    {
        bytes = new byte[text.Length];
        for (int i = 0; i < text.Length; i++)
        {
            int b = SloppyCp1252Byte(text[i]);
            if (b < 0) { bytes = null; return false; }
            bytes[i] = (byte)b;
        }
        return true;
    }

    static readonly UTF8Encoding StrictUtf8 = new(false, true);

    static bool TryDecodeUtf8(byte[] bytes, out string? text)
    {
        try { text = StrictUtf8.GetString(bytes); return true; }
        catch (DecoderFallbackException) { text = null; return false; }
    }

    // ---- single-character fixes ----------------------------------------------------------

    static string FixC1Controls(string text)
    {
        if (!text.Any(c => c is >= '\x80' and <= '\x9f')) return text;
        var chars = text.ToCharArray();
        for (int i = 0; i < chars.Length; i++)
            if (chars[i] is >= '\x80' and <= '\x9f') chars[i] = PythonHtml.SloppyCp1252High(chars[i]);
        return new string(chars);
    }

    static string? LatinLigature(int cp) => cp switch
    {
        0x0132 => "IJ", 0x0133 => "ij", 0x0149 => "\u02BCn",
        0x01F1 => "DZ", 0x01F2 => "Dz", 0x01F3 => "dz",
        0x01C4 => "D\u017D", 0x01C5 => "D\u017E", 0x01C6 => "d\u017E",
        0x01C7 => "LJ", 0x01C8 => "Lj", 0x01C9 => "lj",
        0x01CA => "NJ", 0x01CB => "Nj", 0x01CC => "nj",
        0xFB00 => "ff", 0xFB01 => "fi", 0xFB02 => "fl", 0xFB03 => "ffi", 0xFB04 => "ffl",
        0xFB05 => "\u017Ft", 0xFB06 => "st",
        _ => null,
    };

    // Applies a per-character (BMP) replacement map.
    static string Translate(string text, Func<int, string?> map)
    {
        StringBuilder? sb = null;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            string? r = c < 0x100 ? null : map(c);
            if (r == null) { sb?.Append(c); continue; }
            if (sb == null) { sb = new StringBuilder(text.Length + 8); sb.Append(text, 0, i); }
            sb.Append(r);
        }
        return sb?.ToString() ?? text;
    }

    static string UncurlQuotes(string text)
    {
        if (!text.Any(c => c == '\u02BC' || c is >= '\u2018' and <= '\u201F')) return text;
        var chars = text.ToCharArray();
        for (int i = 0; i < chars.Length; i++)
        {
            if (chars[i] == '\u02BC' || chars[i] is >= '\u2018' and <= '\u201B') chars[i] = '\'';
            else if (chars[i] is >= '\u201C' and <= '\u201F') chars[i] = '"';
        }
        return new string(chars);
    }

    static string FixLineBreaks(string text)
    {
        if (text.IndexOfAny(['\r', '\u2028', '\u2029', '\u0085']) < 0) return text;
        return text.Replace("\r\n", "\n").Replace('\r', '\n').Replace('\u2028', '\n').Replace('\u2029', '\n').Replace('\u0085', '\n');
    }

    static string FixSurrogates(string text)
    {
        StringBuilder? sb = null;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            bool lone = false;
            if (char.IsHighSurrogate(c))
            {
                if (i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
                {
                    sb?.Append(c).Append(text[i + 1]);
                    i++;
                    continue;
                }
                lone = true;
            }
            else if (char.IsLowSurrogate(c)) lone = true;
            if (lone && sb == null) { sb = new StringBuilder(text.Length); sb.Append(text, 0, i); }
            sb?.Append(lone ? '\uFFFD' : c);
        }
        return sb?.ToString() ?? text;
    }

    static string RemoveTerminalEscapes(string text)
    {
        int esc = text.IndexOf('\x1b');
        if (esc < 0) return text;
        var sb = new StringBuilder(text.Length);
        int i = 0;
        while (i < text.Length)
        {
            if (text[i] == '\x1b' && i + 1 < text.Length && text[i + 1] == '[')
            {
                int k = i + 2;
                while (k < text.Length && (char.IsDigit(text[k]) || text[k] == ';')) k++;
                if (k < text.Length && char.IsAsciiLetter(text[k])) { i = k + 1; continue; }
            }
            sb.Append(text[i++]);
        }
        return sb.ToString();
    }

    static bool IsRemovedControl(char c) =>
        c <= '\x08' || c == '\x0b' || c is >= '\x0e' and <= '\x1f' || c == '\x7f'
        || c is >= '\u206a' and <= '\u206f' || c == '\ufeff' || c is >= '\ufff9' and <= '\ufffc';

    static string RemoveControlChars(string text)
    {
        int first = -1;
        for (int i = 0; i < text.Length; i++) if (IsRemovedControl(text[i])) { first = i; break; }
        if (first < 0) return text;
        var sb = new StringBuilder(text.Length);
        sb.Append(text, 0, first);
        for (int i = first; i < text.Length; i++) if (!IsRemovedControl(text[i])) sb.Append(text[i]);
        return sb.ToString();
    }
}
