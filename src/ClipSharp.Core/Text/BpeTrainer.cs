using System.IO.Compression;
using System.Text;

namespace ClipSharp.Text;

/// <summary>
/// Learns byte-level BPE merges from a corpus, for models trained from scratch when OpenAI's vocabulary is not at
/// hand. Text goes through the same cleaning and pre-tokenization as <see cref="ClipTokenizer"/>; each pre-token is
/// mapped to byte characters with <c>&lt;/w&gt;</c> on its last symbol, and the most frequent adjacent pair is merged
/// repeatedly (ties broken by ordinal order of the pair, so the result is deterministic). The output file has the
/// layout of <c>bpe_simple_vocab_16e6.txt.gz</c> with a header that states the merge count, so
/// <see cref="ClipTokenizer.FromBpeFile"/> reads it and the vocabulary size is 256·2 + merges + 2.
/// </summary>
public static class BpeTrainer
{
    /// <summary>First-line prefix of a trained vocabulary; the merge count follows it.</summary>
    public const string HeaderPrefix = "#version: clipsharp-bpe merges=";

    /// <summary>Learns up to <paramref name="merges"/> merges (fewer if the corpus runs out of pairs seen at least twice).</summary>
    public static IReadOnlyList<(string Left, string Right)> Learn(IEnumerable<string> texts, int merges)
    {
        var (bytes, chars) = ByteChars();
        var wordCounts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var text in texts)
        {
            var cleaned = TextCleaner.Clean(text);
            foreach (var (start, length) in ClipTokenizer.PreTokenize(cleaned))
            {
                var w = cleaned.Substring(start, length);
                if (w is ClipTokenizer.StartOfText or ClipTokenizer.EndOfText) continue;
                wordCounts[w] = wordCounts.GetValueOrDefault(w) + 1;
            }
        }
        // Each distinct word as a list of symbols.
        var words = new List<(List<string> Symbols, int Count)>();
        foreach (var (w, c) in wordCounts.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var enc = Encoding.UTF8.GetBytes(w);
            var symbols = enc.Select(b => chars[b].ToString()).ToList();
            symbols[^1] += "</w>";
            words.Add((symbols, c));
        }
        var result = new List<(string, string)>(merges);
        var pairCounts = new Dictionary<(string, string), int>();
        while (result.Count < merges)
        {
            pairCounts.Clear();
            foreach (var (symbols, count) in words)
                for (int i = 0; i + 1 < symbols.Count; i++)
                {
                    var key = (symbols[i], symbols[i + 1]);
                    pairCounts[key] = pairCounts.GetValueOrDefault(key) + count;
                }
            (string, string)? best = null;
            int bestCount = 1;
            foreach (var (pair, count) in pairCounts)
            {
                if (count > bestCount || (count == bestCount && best is not null && Compare(pair, best.Value) < 0))
                {
                    best = pair; bestCount = count;
                }
            }
            if (best is null) break;
            var (left, right) = best.Value;
            result.Add((left, right));
            var merged = left + right;
            foreach (var (symbols, _) in words)
            {
                for (int i = 0; i + 1 < symbols.Count; i++)
                {
                    if (symbols[i] == left && symbols[i + 1] == right)
                    {
                        symbols[i] = merged;
                        symbols.RemoveAt(i + 1);
                    }
                }
            }
        }
        return result;
    }

    /// <summary>Learns merges and writes them as a gzip vocabulary file readable by <see cref="ClipTokenizer.FromBpeFile"/>.
    /// The file is written to a temporary name and renamed.</summary>
    public static void TrainToFile(IEnumerable<string> texts, int merges, string path)
    {
        var learned = Learn(texts, merges);
        var tmp = path + ".tmp";
        using (var file = File.Create(tmp))
        using (var gz = new GZipStream(file, CompressionLevel.Optimal))
        using (var w = new StreamWriter(gz, new UTF8Encoding(false)))
        {
            w.Write(HeaderPrefix + learned.Count + "\n");
            foreach (var (l, r) in learned) w.Write(l + " " + r + "\n");
        }
        File.Move(tmp, path, overwrite: true);
    }

    private static int Compare((string, string) a, (string, string) b)
    {
        int c = string.CompareOrdinal(a.Item1, b.Item1);
        return c != 0 ? c : string.CompareOrdinal(a.Item2, b.Item2);
    }

    private static (byte[] Bytes, char[] Chars) ByteChars()
    {
        var chars = new char[256];
        var printable = new List<int>();
        for (int b = '!'; b <= '~'; b++) printable.Add(b);
        for (int b = 0xA1; b <= 0xAC; b++) printable.Add(b);
        for (int b = 0xAE; b <= 0xFF; b++) printable.Add(b);
        int n = 0;
        for (int b = 0; b < 256; b++) chars[b] = printable.Contains(b) ? (char)b : (char)(256 + n++);
        return (Enumerable.Range(0, 256).Select(i => (byte)i).ToArray(), chars);
    }
}
