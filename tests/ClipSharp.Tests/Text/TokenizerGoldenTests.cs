using System.Text.Json;
using ClipSharp.Text;

namespace ClipSharp.Tests.Text;

/// <summary>Shared tokenizer instance loaded from the reference BPE file.</summary>
public static class SharedTokenizer
{
    static readonly Lazy<ClipTokenizer> Lazy = new(() => ClipTokenizer.FromBpeFile(Golden.Path("bpe_simple_vocab_16e6.txt.gz")));
    public static ClipTokenizer Instance => Lazy.Value;
}

public sealed record TokenizerCase(int Line, string Text, int[] Ids, string Category, int NBpeTokens, string Cleaned)
{
    public override string ToString() => $"#{Line} [{Category}] {Escape(Text)}";

    static string Escape(string s)
    {
        var t = string.Concat(s.Select(c => c < 0x20 || c >= 0x7f ? $"\\u{(int)c:X4}" : c.ToString()));
        return t.Length > 60 ? t[..60] + "..." : t;
    }

    public static IReadOnlyList<TokenizerCase> Load()
    {
        var list = new List<TokenizerCase>();
        int n = 0;
        foreach (var line in File.ReadLines(Golden.Path("tokenizer_cases.jsonl")))
        {
            n++;
            if (line.Length == 0) continue;
            using var doc = JsonDocument.Parse(line);
            var r = doc.RootElement;
            list.Add(new TokenizerCase(n, r.GetProperty("text").GetString()!,
                r.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
                r.GetProperty("category").GetString()!, r.GetProperty("n_bpe_tokens").GetInt32(),
                r.GetProperty("cleaned").GetString()!));
        }
        return list;
    }
}

public class TokenizerGoldenTests
{
    static readonly IReadOnlyList<TokenizerCase> Cases = TokenizerCase.Load();

    public static TheoryData<int> CaseIndices()
    {
        var data = new TheoryData<int>();
        for (int i = 0; i < Cases.Count; i++) data.Add(i);
        return data;
    }

    [Fact]
    public void GoldenFileHas172Cases() => Assert.Equal(172, Cases.Count);

    [Theory]
    [MemberData(nameof(CaseIndices))]
    public void MatchesReference(int index)
    {
        var c = Cases[index];
        var tok = SharedTokenizer.Instance;
        Assert.True(c.Cleaned == TextCleaner.Clean(c.Text), $"{c}: cleaned text differs");
        Assert.True(c.NBpeTokens == tok.Encode(c.Text).Length, $"{c}: BPE token count differs");
        Assert.Equal(c.Ids, tok.Tokenize(c.Text, 77, truncate: true));
    }

    [Fact]
    public void DecodeMatchesReference()
    {
        var tok = SharedTokenizer.Instance;
        int n = 0;
        foreach (var line in File.ReadLines(Golden.Path("tokenizer_cases_decode.jsonl")))
        {
            if (line.Length == 0) continue;
            using var doc = JsonDocument.Parse(line);
            var r = doc.RootElement;
            var ids = r.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            Assert.True(r.GetProperty("text").GetString() == tok.Decode(ids), r.GetProperty("note").GetString());
            n++;
        }
        Assert.Equal(13, n);
    }

    [Fact]
    public void VocabularyShape()
    {
        var tok = SharedTokenizer.Instance;
        Assert.Equal(49408, tok.VocabSize);
        Assert.Equal(48894, tok.MergeCount);
        Assert.Equal(49406, tok.StartOfTextId);
        Assert.Equal(49407, tok.EndOfTextId);
    }

    [Fact]
    public void TooLongTextThrowsWithoutTruncate()
    {
        var tok = SharedTokenizer.Instance;
        string text = string.Join(' ', Enumerable.Repeat("cat", 100));
        var ex = Assert.Throws<ArgumentException>(() => tok.Tokenize(text));
        Assert.Contains("Input text is too long for context length 77", ex.Message);
        Assert.Contains("102 tokens", ex.Message);
        Assert.Contains("cat cat", ex.Message);
        Assert.Throws<ArgumentException>(() => tok.TokenizeBatch(["a dog", text]));
    }

    [Fact]
    public void TruncatePutsEndOfTextLast()
    {
        var tok = SharedTokenizer.Instance;
        string text = string.Join(' ', Enumerable.Repeat("cat", 100));
        var ids = tok.Tokenize(text, truncate: true);
        Assert.Equal(77, ids.Length);
        Assert.Equal(49406, ids[0]);
        Assert.Equal(49407, ids[76]);
        Assert.All(ids[1..76], id => Assert.Equal(ids[1], id));
        var row = tok.Tokenize(text, contextLength: 10, truncate: true);
        Assert.Equal(49407, row[9]);
    }

    [Fact]
    public void BatchAndTensorMatchSingleRows()
    {
        var tok = SharedTokenizer.Instance;
        string[] texts = ["a photo of a cat.", "a diagram", ""];
        var batch = tok.TokenizeBatch(texts);
        Assert.Equal(3, batch.GetLength(0));
        Assert.Equal(77, batch.GetLength(1));
        using var tensor = tok.ToTensor(texts);
        Assert.Equal(new long[] { 3, 77 }, tensor.shape);
        Assert.Equal(TorchSharp.torch.ScalarType.Int64, tensor.dtype);
        var flat = tensor.data<long>().ToArray();
        for (int i = 0; i < texts.Length; i++)
        {
            var row = tok.Tokenize(texts[i]);
            for (int j = 0; j < 77; j++)
            {
                Assert.Equal(row[j], batch[i, j]);
                Assert.Equal(row[j], flat[i * 77 + j]);
            }
        }
    }

    [Fact]
    public void ParallelTokenizationEqualsSerial()
    {
        var tok = ClipTokenizer.FromBpeFile(Golden.Path("bpe_simple_vocab_16e6.txt.gz")); // cold cache
        var texts = Cases.Select(c => c.Text).Concat(TokenizerBenchmark.ImageNetPrompts().Take(4000)).ToArray();
        var parallel = new int[texts.Length][];
        Parallel.For(0, texts.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 },
            i => parallel[i] = tok.Tokenize(texts[i], truncate: true));
        var fresh = ClipTokenizer.FromBpeFile(Golden.Path("bpe_simple_vocab_16e6.txt.gz"));
        for (int i = 0; i < texts.Length; i++) Assert.Equal(fresh.Tokenize(texts[i], truncate: true), parallel[i]);
    }

    [Fact]
    public void HuggingFaceFilesGiveIdenticalIds()
    {
        var bpe = SharedTokenizer.Instance;
        string dir = Path.Combine(Path.GetTempPath(), "clipsharp-hf-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var vocab = new Dictionary<string, int>();
            for (int id = 0; id < bpe.VocabSize; id++) vocab[bpe.IdToToken(id)] = id;
            File.WriteAllText(Path.Combine(dir, "vocab.json"), JsonSerializer.Serialize(vocab));
            var lines = new List<string> { "#version: 0.2" };
            using (var gz = new System.IO.Compression.GZipStream(File.OpenRead(Golden.Path("bpe_simple_vocab_16e6.txt.gz")), System.IO.Compression.CompressionMode.Decompress))
            using (var reader = new StreamReader(gz))
            {
                reader.ReadLine();
                for (int i = 0; i < 48894; i++) lines.Add(reader.ReadLine()!);
            }
            File.WriteAllLines(Path.Combine(dir, "merges.txt"), lines);

            var hf = ClipTokenizer.FromHuggingFace(Path.Combine(dir, "vocab.json"), Path.Combine(dir, "merges.txt"));
            Assert.Equal(bpe.VocabSize, hf.VocabSize);
            Assert.Equal(bpe.MergeCount, hf.MergeCount);
            foreach (var c in Cases) Assert.Equal(c.Ids, hf.Tokenize(c.Text, 77, truncate: true));
            Assert.Equal(bpe.Decode([49406, 320, 1125, 49407]), hf.Decode([49406, 320, 1125, 49407]));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
