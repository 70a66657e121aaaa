using System.Text;

namespace ClipSharp.Text;

/// <summary>
/// Character classes, lower-casing and NFC normalisation with the semantics of the Python
/// reference (Python 3.11 / Unicode 14 <c>str.lower</c> and <c>unicodedata</c>, the <c>regex</c>
/// module's <c>\p{L}</c>, <c>\p{N}</c> and <c>\s</c>). Everything is table driven from
/// <see cref="UnicodeTables"/>, so results do not depend on ICU or on .NET's invariant
/// globalization mode (in which <see cref="string.Normalize()"/> is a no-op).
/// </summary>
internal static class UnicodeText
{
    const byte Letter = 1, Number = 2, Space = 4, Cased = 8, CaseIgnorable = 16, NfcUnsafe = 32;

    // Flags for the Basic Multilingual Plane; supplementary planes use binary search over the ranges.
    static readonly byte[] Bmp = BuildBmp();
    static readonly Dictionary<int, string> LowerMap = BuildMap(UnicodeTables.LowerMap);
    static readonly Dictionary<int, string> WidthMap = BuildMap(UnicodeTables.WidthMap);
    static readonly Dictionary<int, int> Ccc = BuildCcc();
    static readonly Dictionary<int, int[]> Decomp = BuildDecomp();
    static readonly Dictionary<long, int> Compose = BuildCompose();

    static byte[] BuildBmp()
    {
        var flags = new byte[0x10000];
        Mark(flags, UnicodeTables.LetterRanges, Letter);
        Mark(flags, UnicodeTables.NumberRanges, Number);
        Mark(flags, UnicodeTables.WhitespaceRanges, Space);
        Mark(flags, UnicodeTables.CasedRanges, Cased);
        Mark(flags, UnicodeTables.CaseIgnorableRanges, CaseIgnorable);
        Mark(flags, UnicodeTables.NfcUnsafeRanges, NfcUnsafe);
        return flags;
    }

    static void Mark(byte[] flags, int[] ranges, byte bit)
    {
        for (int i = 0; i < ranges.Length; i += 2)
            for (int cp = ranges[i]; cp <= ranges[i + 1] && cp < 0x10000; cp++)
                flags[cp] |= bit;
    }

    static Dictionary<int, string> BuildMap(int[] table)
    {
        var map = new Dictionary<int, string>();
        for (int i = 0; i < table.Length;)
        {
            int cp = table[i], n = table[i + 1];
            var sb = new StringBuilder(n);
            for (int k = 0; k < n; k++) sb.Append(char.ConvertFromUtf32(table[i + 2 + k]));
            map[cp] = sb.ToString();
            i += 2 + n;
        }
        return map;
    }

    static Dictionary<int, int> BuildCcc()
    {
        var map = new Dictionary<int, int>();
        for (int i = 0; i < UnicodeTables.CombiningClasses.Length; i += 2)
            map[UnicodeTables.CombiningClasses[i]] = UnicodeTables.CombiningClasses[i + 1];
        return map;
    }

    static Dictionary<int, int[]> BuildDecomp()
    {
        var map = new Dictionary<int, int[]>();
        var t = UnicodeTables.Decompositions;
        for (int i = 0; i < t.Length;)
        {
            int n = t[i + 1];
            map[t[i]] = t.AsSpan(i + 2, n).ToArray();
            i += 2 + n;
        }
        return map;
    }

    static Dictionary<long, int> BuildCompose()
    {
        var map = new Dictionary<long, int>();
        var t = UnicodeTables.CompositionPairs;
        for (int i = 0; i < t.Length; i += 3) map[PairKey(t[i], t[i + 1])] = t[i + 2];
        return map;
    }

    static long PairKey(int a, int b) => ((long)a << 21) | (uint)b;

    static bool InRanges(int[] ranges, int cp)
    {
        int lo = 0, hi = ranges.Length / 2 - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >> 1;
            if (cp < ranges[2 * mid]) hi = mid - 1;
            else if (cp > ranges[2 * mid + 1]) lo = mid + 1;
            else return true;
        }
        return false;
    }

    static bool Has(int cp, byte bit, int[] ranges) =>
        cp < 0x10000 ? (Bmp[cp] & bit) != 0 : InRanges(ranges, cp);

    /// <summary>Python <c>regex</c> <c>\p{L}</c>.</summary>
    public static bool IsLetter(int cp) => Has(cp, Letter, UnicodeTables.LetterRanges);

    /// <summary>Python <c>regex</c> <c>\p{N}</c>.</summary>
    public static bool IsNumber(int cp) => Has(cp, Number, UnicodeTables.NumberRanges);

    /// <summary>Python <c>regex</c> <c>\s</c> for str patterns.</summary>
    public static bool IsWhitespace(int cp) => Has(cp, Space, UnicodeTables.WhitespaceRanges);

    static bool IsCased(int cp) => Has(cp, Cased, UnicodeTables.CasedRanges);
    static bool IsCaseIgnorable(int cp) => Has(cp, CaseIgnorable, UnicodeTables.CaseIgnorableRanges);
    static bool IsNfcUnsafe(int cp) => Has(cp, NfcUnsafe, UnicodeTables.NfcUnsafeRanges);

    /// <summary>The fullwidth/halfwidth replacement ftfy's <c>fix_character_width</c> uses, or null.</summary>
    public static string? WidthReplacement(int cp) => WidthMap.TryGetValue(cp, out var s) ? s : null;

    /// <summary>Decodes a string into code points (lone surrogates are kept as their own value).</summary>
    public static int[] CodePoints(string s)
    {
        var list = new List<int>(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                list.Add(char.ConvertToUtf32(c, s[i + 1]));
                i++;
            }
            else list.Add(c);
        }
        return list.ToArray();
    }

    static void AppendCodePoint(StringBuilder sb, int cp)
    {
        if (cp < 0x10000) sb.Append((char)cp);
        else sb.Append(char.ConvertFromUtf32(cp));
    }

    /// <summary>
    /// Python <c>str.lower()</c>: full lowercase mapping (İ → i + U+0307) plus the Final_Sigma rule
    /// (Σ → ς when preceded by a cased letter and not followed by one, skipping case-ignorable characters).
    /// </summary>
    public static string PythonLower(string s)
    {
        bool ascii = true, upper = false;
        foreach (char c in s)
        {
            if (c >= 0x80) { ascii = false; break; }
            if (c is >= 'A' and <= 'Z') upper = true;
        }
        if (ascii) return upper ? s.ToLowerInvariant() : s;

        var cps = CodePoints(s);
        var sb = new StringBuilder(s.Length + 4);
        for (int i = 0; i < cps.Length; i++)
        {
            int cp = cps[i];
            if (cp == 0x3A3) sb.Append(IsFinalSigma(cps, i) ? 'ς' : 'σ');
            else if (LowerMap.TryGetValue(cp, out var low)) sb.Append(low);
            else AppendCodePoint(sb, cp);
        }
        return sb.ToString();
    }

    static bool IsFinalSigma(int[] cps, int i)
    {
        int j = i - 1;
        while (j >= 0 && IsCaseIgnorable(cps[j])) j--;
        if (j < 0 || !IsCased(cps[j])) return false;
        j = i + 1;
        while (j < cps.Length && IsCaseIgnorable(cps[j])) j++;
        return j == cps.Length || !IsCased(cps[j]);
    }

    const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    static int CombiningClass(int cp) => cp < 0x300 ? 0 : Ccc.TryGetValue(cp, out var c) ? c : 0;

    /// <summary>Unicode canonical composition (NFC), as Python's <c>unicodedata.normalize("NFC", s)</c>.</summary>
    public static string Nfc(string s)
    {
        bool needed = false;
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c < 0x300) continue;
            int cp = c;
            if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
                cp = char.ConvertToUtf32(c, s[++i]);
            if (IsNfcUnsafe(cp)) { needed = true; break; }
        }
        if (!needed) return s;

        // Full canonical decomposition.
        var d = new List<int>(s.Length + 8);
        foreach (int cp in CodePoints(s))
        {
            if (cp >= SBase && cp < SBase + SCount)
            {
                int si = cp - SBase;
                d.Add(LBase + si / NCount);
                d.Add(VBase + si % NCount / TCount);
                if (si % TCount != 0) d.Add(TBase + si % TCount);
            }
            else if (Decomp.TryGetValue(cp, out var parts)) d.AddRange(parts);
            else d.Add(cp);
        }

        // Canonical ordering: stable sort of each run of non-starters by combining class.
        for (int i = 1; i < d.Count; i++)
        {
            int cc = CombiningClass(d[i]);
            if (cc == 0) continue;
            int j = i;
            while (j > 0 && CombiningClass(d[j - 1]) > cc)
            {
                (d[j - 1], d[j]) = (d[j], d[j - 1]);
                j--;
            }
        }

        // Canonical composition.
        var result = new List<int>(d.Count);
        int starterPos = -1, lastClass = 0;
        foreach (int cp in d)
        {
            int cc = CombiningClass(cp);
            if (starterPos >= 0 && (lastClass < cc || lastClass == 0 && result.Count - 1 == starterPos))
            {
                int composite = ComposePair(result[starterPos], cp);
                if (composite >= 0)
                {
                    result[starterPos] = composite;
                    continue;
                }
            }
            if (cc == 0) { starterPos = result.Count; lastClass = 0; }
            else lastClass = cc;
            result.Add(cp);
        }

        var sb = new StringBuilder(result.Count + 4);
        foreach (int cp in result) AppendCodePoint(sb, cp);
        return sb.ToString();
    }

    static int ComposePair(int a, int b)
    {
        if (a >= LBase && a < LBase + LCount && b >= VBase && b < VBase + VCount)
            return SBase + ((a - LBase) * VCount + (b - VBase)) * TCount;
        if (a >= SBase && a < SBase + SCount && (a - SBase) % TCount == 0 && b > TBase && b < TBase + TCount)
            return a + (b - TBase);
        return Compose.TryGetValue(PairKey(a, b), out var c) ? c : -1;
    }
}
