using System.Collections.Concurrent;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using TorchSharp;

namespace ClipSharp.Text;

/// <summary>
/// The CLIP byte-level BPE tokenizer, reproducing the reference <c>SimpleTokenizer</c> and
/// <c>clip.tokenize</c> id for id: <see cref="TextCleaner.Clean"/>, the pre-tokenizer pattern
/// (special tokens | <c>'s 't 're 've 'm 'll 'd</c> | letter runs | single number characters |
/// runs of other non-space characters), GPT-2 byte-to-unicode mapping, <c>&lt;/w&gt;</c> on the last
/// symbol of each pre-token, and BPE merges applied lowest rank first.
/// </summary>
/// <remarks>
/// Instances are immutable apart from an internal concurrent BPE cache and are safe to use from
/// any number of threads.
/// </remarks>
public sealed class ClipTokenizer
{
    /// <summary>The start-of-text marker string.</summary>
    public const string StartOfText = "<|startoftext|>";

    /// <summary>The end-of-text marker string.</summary>
    public const string EndOfText = "<|endoftext|>";

    /// <summary>The context length of the released CLIP models.</summary>
    public const int DefaultContextLength = 77;

    const int MaxCacheEntries = 200_000;

    readonly Dictionary<string, int> _encoder;
    readonly string[] _decoder;
    readonly Dictionary<long, (int Rank, int Result)> _merges;
    readonly int[] _byteId = new int[256];
    readonly int[] _byteEndId = new int[256];
    readonly Dictionary<char, byte> _byteDecoder;
    readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);

    /// <summary>Id of <c>&lt;|startoftext|&gt;</c> (49406 for CLIP).</summary>
    public int StartOfTextId { get; }

    /// <summary>Id of <c>&lt;|endoftext|&gt;</c> (49407 for CLIP).</summary>
    public int EndOfTextId { get; }

    /// <summary>Number of ids in the vocabulary (49408 for CLIP).</summary>
    public int VocabSize => _decoder.Length;

    /// <summary>Number of BPE merges.</summary>
    public int MergeCount => _merges.Count;

    /// <summary>Where the vocabulary came from, for messages: the file's full path, or the built-in file's name.</summary>
    public string Source { get; }

    /// <summary>Which vocabulary this is (files, SHA-256, token count); checkpoints ClipSharp writes record it.</summary>
    public VocabularyRecord Vocabulary { get; }

    /// <summary>Full paths of the files read, in <see cref="VocabularyRecord.Files"/> order (empty for the built-in one).</summary>
    internal IReadOnlyList<string> SourcePaths { get; }

    ClipTokenizer(Dictionary<string, int> encoder, IReadOnlyList<(string A, string B)> merges, string source,
        string format, IReadOnlyList<VocabularyFile> files, IReadOnlyList<string> sourcePaths)
    {
        _encoder = encoder;
        int maxId = encoder.Values.DefaultIfEmpty(-1).Max();
        _decoder = new string[maxId + 1];
        foreach (var (token, id) in encoder)
        {
            if (id < 0) throw new InvalidDataException($"Negative token id {id} for '{token}'.");
            _decoder[id] = token;
        }

        var (bytes, chars) = ByteToUnicode();
        _byteDecoder = new Dictionary<char, byte>(256);
        for (int i = 0; i < 256; i++)
        {
            _byteDecoder[chars[i]] = bytes[i];
            _byteId[bytes[i]] = Lookup(chars[i].ToString());
            _byteEndId[bytes[i]] = Lookup(chars[i] + "</w>");
        }

        _merges = new Dictionary<long, (int, int)>(merges.Count);
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (a, b) = merges[rank];
            long key = PairKey(Lookup(a), Lookup(b));
            _merges.TryAdd(key, (rank, Lookup(a + b)));
        }

        StartOfTextId = Lookup(StartOfText);
        EndOfTextId = Lookup(EndOfText);
        Source = source;
        SourcePaths = sourcePaths;
        Vocabulary = new VocabularyRecord(format, files, VocabSize);
    }

    int Lookup(string token) =>
        _encoder.TryGetValue(token, out var id) ? id
        : throw new InvalidDataException($"Token '{token}' is missing from the vocabulary.");

    static long PairKey(int a, int b) => ((long)a << 32) | (uint)b;

    /// <summary>
    /// The GPT-2 byte-to-unicode table in vocabulary order: printable Latin-1 bytes map to themselves,
    /// the 68 others to U+0100 upwards.
    /// </summary>
    static (byte[] Bytes, char[] Chars) ByteToUnicode()
    {
        var bytes = new List<int>();
        for (int b = '!'; b <= '~'; b++) bytes.Add(b);
        for (int b = 0xA1; b <= 0xAC; b++) bytes.Add(b);
        for (int b = 0xAE; b <= 0xFF; b++) bytes.Add(b);
        var chars = bytes.Select(b => (char)b).ToList();
        int n = 0;
        for (int b = 0; b < 256; b++)
        {
            if (bytes.Contains(b)) continue;
            bytes.Add(b);
            chars.Add((char)(256 + n++));
        }
        return (bytes.Select(b => (byte)b).ToArray(), chars.ToArray());
    }

    /// <summary>File name of OpenAI's vocabulary, the one built into ClipSharp.</summary>
    public const string BuiltInFileName = "bpe_simple_vocab_16e6.txt.gz";

    /// <summary>SHA-256 of OpenAI's <c>bpe_simple_vocab_16e6.txt.gz</c> (the CLIP release's file, built into ClipSharp).</summary>
    public const string BuiltInSha256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a";

    const string BuiltInResource = "ClipSharp.Text.Data." + BuiltInFileName;

    static readonly Lazy<ClipTokenizer> BuiltInTokenizer = new(() =>
    {
        var bytes = BuiltInBytes();
        var file = VocabularyFile.Of(BuiltInFileName, bytes);
        if (file.Sha256 != BuiltInSha256)
            throw new InvalidDataException($"the built-in {BuiltInFileName} has SHA-256 {file.Sha256}, expected {BuiltInSha256}: the ClipSharp assembly is damaged");
        return FromBpeBytes(bytes, $"{BuiltInFileName} (built into ClipSharp)", file, []);
    });

    /// <summary>
    /// The tokenizer of the released CLIP models, from OpenAI's <c>bpe_simple_vocab_16e6.txt.gz</c> embedded in the
    /// ClipSharp assembly (MIT licence of the CLIP release; see THIRD-PARTY-NOTICES). Loaded once and shared.
    /// </summary>
    public static ClipTokenizer BuiltIn => BuiltInTokenizer.Value;

    /// <summary>The bytes of the embedded <c>bpe_simple_vocab_16e6.txt.gz</c>, exactly as released.</summary>
    public static byte[] BuiltInBytes()
    {
        using var stream = typeof(ClipTokenizer).Assembly.GetManifestResourceStream(BuiltInResource)
            ?? throw new InvalidOperationException($"the ClipSharp assembly lacks its embedded resource {BuiltInResource}");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    /// <summary>
    /// Loads the reference vocabulary file <c>bpe_simple_vocab_16e6.txt.gz</c>: gzip-compressed UTF-8,
    /// line 0 a header, then 48,894 merges (further lines are ignored). Ids: 256 byte characters,
    /// the same with <c>&lt;/w&gt;</c>, the merge results in order, then the two special tokens.
    /// Files written by <see cref="BpeTrainer"/> have the same layout with their own merge count.
    /// </summary>
    /// <param name="path">Path of the <c>.txt.gz</c> file.</param>
    /// <returns>The tokenizer.</returns>
    public static ClipTokenizer FromBpeFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string full = Path.GetFullPath(path);
        var bytes = File.ReadAllBytes(full);
        return FromBpeBytes(bytes, full, VocabularyFile.Of(Path.GetFileName(full), bytes), [full]);
    }

    static ClipTokenizer FromBpeBytes(byte[] gzipped, string source, VocabularyFile file, IReadOnlyList<string> paths)
    {
        string content;
        try
        {
            using var gz = new GZipStream(new MemoryStream(gzipped), CompressionMode.Decompress);
            using var reader = new StreamReader(gz, new UTF8Encoding(false, true));
            content = reader.ReadToEnd();
        }
        catch (Exception e) when (e is InvalidDataException or DecoderFallbackException)
        {
            throw new InvalidDataException($"{source}: not a gzip-compressed UTF-8 BPE vocabulary ({e.Message})", e);
        }

        var lines = content.Split('\n');
        // The reference file: 48,894 merges are used (the file holds more lines, which are ignored).
        // A vocabulary trained by BpeTrainer declares its own count in the header.
        int mergeCount = 49152 - 256 - 2;
        if (lines[0].StartsWith(BpeTrainer.HeaderPrefix, StringComparison.Ordinal) &&
            !int.TryParse(lines[0].AsSpan(BpeTrainer.HeaderPrefix.Length).Trim(), out mergeCount))
            throw new InvalidDataException($"{source}: malformed header '{lines[0].Trim()}'.");
        if (lines.Length < mergeCount + 1)
            throw new InvalidDataException($"{source}: expected at least {mergeCount + 1} lines, found {lines.Length}.");
        var merges = new List<(string, string)>(mergeCount);
        for (int i = 1; i <= mergeCount; i++) merges.Add(SplitMerge(lines[i], source, i));

        var (_, chars) = ByteToUnicode();
        var vocab = new List<string>(mergeCount + 514);
        vocab.AddRange(chars.Select(c => c.ToString()));
        vocab.AddRange(chars.Select(c => c + "</w>"));
        vocab.AddRange(merges.Select(m => m.Item1 + m.Item2));
        vocab.Add(StartOfText);
        vocab.Add(EndOfText);
        var encoder = new Dictionary<string, int>(vocab.Count, StringComparer.Ordinal);
        for (int i = 0; i < vocab.Count; i++) encoder[vocab[i]] = i; // later duplicates win, as in a Python dict
        return new ClipTokenizer(encoder, merges, source, VocabularyRecord.BpeFormat, [file], paths);
    }

    /// <summary>
    /// Loads Hugging Face <c>CLIPTokenizer</c> files: <c>vocab.json</c> (token → id) and
    /// <c>merges.txt</c> (an optional <c>#version</c> header line, then one "a b" merge per line in rank order).
    /// </summary>
    /// <param name="vocabJsonPath">Path of <c>vocab.json</c>.</param>
    /// <param name="mergesTxtPath">Path of <c>merges.txt</c>.</param>
    /// <returns>The tokenizer.</returns>
    public static ClipTokenizer FromHuggingFace(string vocabJsonPath, string mergesTxtPath)
    {
        ArgumentNullException.ThrowIfNull(vocabJsonPath);
        ArgumentNullException.ThrowIfNull(mergesTxtPath);
        string vocabFull = Path.GetFullPath(vocabJsonPath), mergesFull = Path.GetFullPath(mergesTxtPath);
        var vocabBytes = File.ReadAllBytes(vocabFull);
        var mergesBytes = File.ReadAllBytes(mergesFull);
        Dictionary<string, int> encoder;
        try
        {
            encoder = JsonSerializer.Deserialize<Dictionary<string, int>>(WithoutBom(vocabBytes))
                ?? throw new InvalidDataException($"{vocabFull}: empty vocabulary.");
        }
        catch (JsonException e) { throw new InvalidDataException($"{vocabFull}: not a token → id JSON object ({e.Message})", e); }
        encoder = new Dictionary<string, int>(encoder, StringComparer.Ordinal);
        var merges = new List<(string, string)>();
        string text;
        try { text = new UTF8Encoding(false, true).GetString(WithoutBom(mergesBytes)); }
        catch (DecoderFallbackException e) { throw new InvalidDataException($"{mergesFull}: not UTF-8 text ({e.Message})", e); }
        var lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].TrimEnd('\r');
            if (line.Length == 0 || (i == 0 && line.StartsWith("#version", StringComparison.Ordinal))) continue;
            merges.Add(SplitMerge(line, mergesFull, i));
        }
        VocabularyFile[] files = [VocabularyFile.Of(Path.GetFileName(vocabFull), vocabBytes), VocabularyFile.Of(Path.GetFileName(mergesFull), mergesBytes)];
        return new ClipTokenizer(encoder, merges, vocabFull, VocabularyRecord.HuggingFaceFormat, files, [vocabFull, mergesFull]);
    }

    static ReadOnlySpan<byte> WithoutBom(byte[] bytes) =>
        bytes.AsSpan().StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]) ? bytes.AsSpan(3) : bytes;

    static (string, string) SplitMerge(string line, string path, int lineNo)
    {
        var parts = line.Split(' ');
        if (parts.Length != 2) throw new InvalidDataException($"{path}:{lineNo + 1}: expected two symbols, got '{line}'.");
        return (parts[0], parts[1]);
    }

    /// <summary>
    /// Encodes text into BPE ids without start/end tokens, as the reference <c>SimpleTokenizer.encode</c>.
    /// </summary>
    /// <param name="text">Raw text; it is cleaned with <see cref="TextCleaner.Clean"/> first.</param>
    /// <returns>The BPE ids.</returns>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>();
        EncodeInto(text, ids);
        return ids.ToArray();
    }

    void EncodeInto(string text, List<int> ids)
    {
        string cleaned = TextCleaner.Clean(text);
        foreach (var (start, length) in PreTokenize(cleaned))
        {
            var token = cleaned.AsSpan(start, length);
            if (token.SequenceEqual(StartOfText)) ids.Add(StartOfTextId);
            else if (token.SequenceEqual(EndOfText)) ids.Add(EndOfTextId);
            else ids.AddRange(Bpe(cleaned.Substring(start, length)));
        }
    }

    /// <summary>
    /// Splits cleaned text into pre-tokens (start, length) with the semantics of the reference pattern
    /// <c>&lt;\|startoftext\|&gt;|&lt;\|endoftext\|&gt;|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+</c>
    /// (case-insensitive, Python <c>regex</c> module, <c>findall</c>).
    /// </summary>
    /// <param name="text">Cleaned text.</param>
    /// <returns>The pre-token spans in order.</returns>
    public static List<(int Start, int Length)> PreTokenize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var result = new List<(int, int)>();
        int i = 0;
        while (i < text.Length)
        {
            int cp = CodePointAt(text, i, out int width);
            int special = MatchIgnoreCase(text, i, StartOfText);
            if (special == 0) special = MatchIgnoreCase(text, i, EndOfText);
            if (special > 0) { result.Add((i, special)); i += special; continue; }
            if (cp == '\'')
            {
                int len = Contraction(text, i);
                if (len > 0) { result.Add((i, len)); i += len; continue; }
            }
            if (UnicodeText.IsLetter(cp))
            {
                int j = i + width;
                while (j < text.Length)
                {
                    int c = CodePointAt(text, j, out int w);
                    if (!UnicodeText.IsLetter(c)) break;
                    j += w;
                }
                result.Add((i, j - i));
                i = j;
                continue;
            }
            if (UnicodeText.IsNumber(cp)) { result.Add((i, width)); i += width; continue; }
            if (UnicodeText.IsWhitespace(cp)) { i += width; continue; }
            {
                int j = i + width;
                while (j < text.Length)
                {
                    int c = CodePointAt(text, j, out int w);
                    if (UnicodeText.IsWhitespace(c) || UnicodeText.IsLetter(c) || UnicodeText.IsNumber(c)) break;
                    j += w;
                }
                result.Add((i, j - i));
                i = j;
            }
        }
        return result;
    }

    static int CodePointAt(string s, int i, out int width)
    {
        char c = s[i];
        if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
        {
            width = 2;
            return char.ConvertToUtf32(c, s[i + 1]);
        }
        width = 1;
        return c;
    }

    // Case-insensitive literal match against a lowercase ASCII pattern; under the regex module's simple
    // case folding, U+017F LONG S also matches 's' (everything else was lower-cased already).
    static int MatchIgnoreCase(string text, int i, string pattern)
    {
        if (text[i] != pattern[0] || i + pattern.Length > text.Length) return 0;
        for (int k = 1; k < pattern.Length; k++)
        {
            char c = text[i + k], p = pattern[k];
            if (c != p && char.ToLowerInvariant(c) != p && !(p == 's' && c == '\u017F')) return 0;
        }
        return pattern.Length;
    }

    static int Contraction(string text, int i)
    {
        static bool Is(string t, int k, char p) =>
            k < t.Length && (t[k] == p || char.ToLowerInvariant(t[k]) == p || (p == 's' && t[k] == '\u017F'));
        if (Is(text, i + 1, 's') || Is(text, i + 1, 't') || Is(text, i + 1, 'm') || Is(text, i + 1, 'd')) return 2;
        if ((Is(text, i + 1, 'r') || Is(text, i + 1, 'v')) && Is(text, i + 2, 'e')) return 3;
        if (Is(text, i + 1, 'l') && Is(text, i + 2, 'l')) return 3;
        return 0;
    }

    /// <summary>BPE ids of one pre-token (cached).</summary>
    int[] Bpe(string token)
    {
        if (_cache.TryGetValue(token, out var cached)) return cached;
        var ids = BpeUncached(token);
        if (_cache.Count < MaxCacheEntries) _cache.TryAdd(token, ids);
        return ids;
    }

    int[] BpeUncached(string token)
    {
        int byteCount = Encoding.UTF8.GetByteCount(token);
        Span<byte> bytes = byteCount <= 256 ? stackalloc byte[byteCount] : new byte[byteCount];
        Encoding.UTF8.GetBytes(token, bytes);
        var word = new List<int>(byteCount);
        for (int i = 0; i < byteCount; i++)
            word.Add(i == byteCount - 1 ? _byteEndId[bytes[i]] : _byteId[bytes[i]]);

        while (word.Count > 1)
        {
            int bestRank = int.MaxValue, bestA = 0, bestB = 0, bestResult = 0;
            for (int i = 0; i < word.Count - 1; i++)
            {
                if (_merges.TryGetValue(PairKey(word[i], word[i + 1]), out var m) && m.Rank < bestRank)
                    (bestRank, bestA, bestB, bestResult) = (m.Rank, word[i], word[i + 1], m.Result);
            }
            if (bestRank == int.MaxValue) break;
            var merged = new List<int>(word.Count);
            for (int i = 0; i < word.Count;)
            {
                if (i < word.Count - 1 && word[i] == bestA && word[i + 1] == bestB)
                {
                    merged.Add(bestResult);
                    i += 2;
                }
                else merged.Add(word[i++]);
            }
            word = merged;
        }
        return word.ToArray();
    }

    /// <summary>
    /// Tokenizes one text like <c>clip.tokenize</c>: start-of-text, the BPE ids, end-of-text, padded with 0
    /// to <paramref name="contextLength"/>. Note that id 0 is also the real token "!".
    /// </summary>
    /// <param name="text">Raw text.</param>
    /// <param name="contextLength">Row length (77 for the released models).</param>
    /// <param name="truncate">When the ids do not fit, keep the first <paramref name="contextLength"/> and make
    /// the last one end-of-text; when false, throw instead.</param>
    /// <returns>An array of exactly <paramref name="contextLength"/> ids.</returns>
    /// <exception cref="ArgumentException">The text is too long and <paramref name="truncate"/> is false.</exception>
    public int[] Tokenize(string text, int contextLength = DefaultContextLength, bool truncate = false)
    {
        var row = new int[contextLength];
        FillRow(text, row, contextLength, truncate);
        return row;
    }

    void FillRow(string text, Span<int> row, int contextLength, bool truncate)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentOutOfRangeException.ThrowIfLessThan(contextLength, 2);
        var ids = new List<int>(contextLength) { StartOfTextId };
        EncodeInto(text, ids);
        ids.Add(EndOfTextId);
        if (ids.Count > contextLength)
        {
            if (!truncate)
            {
                string snippet = text.Length <= 60 ? text : text[..57] + "...";
                throw new ArgumentException(
                    $"Input text is too long for context length {contextLength}: it has {ids.Count} tokens " +
                    $"including start and end of text (\"{snippet}\"). Use truncate to cut it.", nameof(text));
            }
            ids.RemoveRange(contextLength, ids.Count - contextLength);
            ids[contextLength - 1] = EndOfTextId;
        }
        row.Clear();
        for (int i = 0; i < ids.Count; i++) row[i] = ids[i];
    }

    /// <summary>
    /// Tokenizes a batch like <c>clip.tokenize(texts)</c>, returning a rectangular array
    /// <c>[texts.Count, contextLength]</c> (row i belongs to texts[i]).
    /// </summary>
    /// <param name="texts">Raw texts.</param>
    /// <param name="contextLength">Row length.</param>
    /// <param name="truncate">See <see cref="Tokenize"/>.</param>
    /// <returns>The ids, one row per text.</returns>
    /// <exception cref="ArgumentException">A text is too long and <paramref name="truncate"/> is false.</exception>
    public int[,] TokenizeBatch(IReadOnlyList<string> texts, int contextLength = DefaultContextLength, bool truncate = false)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var result = new int[texts.Count, contextLength];
        var row = new int[contextLength];
        for (int i = 0; i < texts.Count; i++)
        {
            FillRow(texts[i], row, contextLength, truncate);
            for (int j = 0; j < contextLength; j++) result[i, j] = row[j];
        }
        return result;
    }

    /// <summary>
    /// Tokenizes a batch into a TorchSharp int64 tensor of shape <c>[texts.Count, contextLength]</c>
    /// (the reference returns int32; models index embeddings with int64).
    /// </summary>
    /// <param name="texts">Raw texts.</param>
    /// <param name="contextLength">Row length.</param>
    /// <param name="truncate">See <see cref="Tokenize"/>.</param>
    /// <returns>A new CPU tensor owned by the caller.</returns>
    public torch.Tensor ToTensor(IReadOnlyList<string> texts, int contextLength = DefaultContextLength, bool truncate = false)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var flat = new long[(long)texts.Count * contextLength];
        var row = new int[contextLength];
        for (int i = 0; i < texts.Count; i++)
        {
            FillRow(texts[i], row, contextLength, truncate);
            for (int j = 0; j < contextLength; j++) flat[(long)i * contextLength + j] = row[j];
        }
        return torch.tensor(flat, [texts.Count, contextLength], torch.int64);
    }

    /// <summary>
    /// Decodes ids like the reference <c>SimpleTokenizer.decode</c>: concatenates the token strings, maps
    /// the characters back to bytes, decodes UTF-8 replacing each maximal invalid subsequence with U+FFFD,
    /// and replaces every <c>&lt;/w&gt;</c> with a space. Special tokens decode to their literal text and
    /// nothing is stripped.
    /// </summary>
    /// <param name="ids">Token ids.</param>
    /// <returns>The decoded text.</returns>
    /// <exception cref="ArgumentOutOfRangeException">An id is not in the vocabulary.</exception>
    public string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var bytes = new List<byte>();
        foreach (int id in ids)
        {
            if ((uint)id >= (uint)_decoder.Length || _decoder[id] is not { } token)
                throw new ArgumentOutOfRangeException(nameof(ids), id, "Token id is not in the vocabulary.");
            foreach (char c in token)
            {
                if (!_byteDecoder.TryGetValue(c, out var b))
                    throw new InvalidDataException($"Token {id} contains a character outside the byte alphabet.");
                bytes.Add(b);
            }
        }
        return new UTF8Encoding(false, false).GetString(bytes.ToArray()).Replace("</w>", " ");
    }

    /// <summary>The token string of an id (byte-unicode characters, possibly ending in <c>&lt;/w&gt;</c>).</summary>
    /// <param name="id">Token id.</param>
    /// <returns>The vocabulary entry.</returns>
    public string IdToToken(int id) =>
        (uint)id < (uint)_decoder.Length && _decoder[id] is { } t ? t
        : throw new ArgumentOutOfRangeException(nameof(id), id, "Token id is not in the vocabulary.");

    /// <summary>The id of a vocabulary entry, or null.</summary>
    /// <param name="token">Token string.</param>
    /// <returns>The id or null.</returns>
    public int? TokenToId(string token) => _encoder.TryGetValue(token, out var id) ? id : null;
}
