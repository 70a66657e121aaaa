using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ClipSharp.Text;

/// <summary>One file of a vocabulary: its name (no folder), SHA-256 (lower-case hex) and size in bytes.</summary>
/// <param name="Name">File name, e.g. <c>bpe-demo.txt.gz</c> or <c>vocab.json</c>.</param>
/// <param name="Sha256">SHA-256 of the file's bytes, lower-case hex.</param>
/// <param name="Bytes">Size of the file.</param>
public sealed record VocabularyFile(string Name, string Sha256, long Bytes)
{
    /// <summary>The record of <paramref name="bytes"/> stored under <paramref name="name"/>.</summary>
    public static VocabularyFile Of(string name, ReadOnlySpan<byte> bytes) =>
        new(name, Convert.ToHexStringLower(SHA256.HashData(bytes)), bytes.Length);
}

/// <summary>
/// Which vocabulary a tokenizer was read from, so that a checkpoint can say which one its token embedding belongs to:
/// the format (<c>bpe</c>: one gzip merges file like OpenAI's <c>bpe_simple_vocab_16e6.txt.gz</c>; <c>hf</c>: Hugging
/// Face <c>vocab.json</c> + <c>merges.txt</c>), the files by name, SHA-256 and size, and the number of token ids.
/// Checkpoints ClipSharp writes carry it in their metadata under <see cref="MetadataKey"/>.
/// </summary>
/// <param name="Format"><see cref="BpeFormat"/> or <see cref="HuggingFaceFormat"/>.</param>
/// <param name="Files">The files, in the order the loader reads them.</param>
/// <param name="Tokens">Number of token ids (the model's <c>vocab_size</c> must equal it).</param>
public sealed record VocabularyRecord(string Format, IReadOnlyList<VocabularyFile> Files, int Tokens)
{
    /// <summary>Metadata key of the record in checkpoints ClipSharp writes.</summary>
    public const string MetadataKey = "clipsharp.vocab";

    /// <summary>One gzip BPE merges file.</summary>
    public const string BpeFormat = "bpe";

    /// <summary>Hugging Face <c>vocab.json</c> and <c>merges.txt</c>.</summary>
    public const string HuggingFaceFormat = "hf";

    /// <summary>Whether this is the vocabulary built into ClipSharp (OpenAI's, compared by SHA-256).</summary>
    public bool IsBuiltIn => Format == BpeFormat && Files.Count == 1 && Files[0].Sha256 == ClipTokenizer.BuiltInSha256;

    /// <summary>Same format, token count and files (names, hashes and sizes).</summary>
    public bool Equals(VocabularyRecord? other) =>
        other is not null && Format == other.Format && Tokens == other.Tokens && Files.SequenceEqual(other.Files);

    /// <summary>The same token table: format, token count and file contents (SHA-256 and size), whatever the files are called.</summary>
    public bool SameContent(VocabularyRecord other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return Format == other.Format && Tokens == other.Tokens &&
               Files.Select(f => (f.Sha256, f.Bytes)).SequenceEqual(other.Files.Select(f => (f.Sha256, f.Bytes)));
    }

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Format, Tokens, Files.Count > 0 ? Files[0] : null);

    /// <summary>"bpe-demo.txt.gz (4,514 tokens, sha256 1a2b3c4d5e6f…)", for messages.</summary>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{string.Join(" + ", Files.Select(f => f.Name))} ({Tokens:N0} tokens, sha256 {string.Join(" + ", Files.Select(f => f.Sha256[..12] + "…"))})");

    /// <summary>The metadata value: <c>{"format":…,"tokens":…,"files":[{"name":…,"sha256":…,"bytes":…}]}</c>.</summary>
    public string ToJson() => new JsonObject
    {
        ["format"] = Format,
        ["tokens"] = Tokens,
        ["files"] = new JsonArray(Files.Select(f => (JsonNode)new JsonObject { ["name"] = f.Name, ["sha256"] = f.Sha256, ["bytes"] = f.Bytes }).ToArray()),
    }.ToJsonString();

    /// <summary>Reads <see cref="ToJson"/>'s form back; <paramref name="source"/> names where it came from in errors.</summary>
    /// <exception cref="InvalidDataException">Malformed, or a file name that is not a plain name.</exception>
    public static VocabularyRecord FromJson(string json, string source)
    {
        ArgumentNullException.ThrowIfNull(json);
        InvalidDataException Bad(string what) => new($"{source}: malformed vocabulary record ({what})");
        JsonObject o;
        try { o = JsonNode.Parse(json) as JsonObject ?? throw Bad("not a JSON object"); }
        catch (JsonException e) { throw Bad(e.Message); }
        try
        {
            string format = o["format"]?.GetValue<string>() ?? throw Bad("no format");
            if (format is not (BpeFormat or HuggingFaceFormat)) throw Bad($"unknown format '{format}'");
            int tokens = o["tokens"]?.GetValue<int>() ?? throw Bad("no tokens");
            if (tokens < 1) throw Bad($"tokens {tokens}");
            if (o["files"] is not JsonArray list || list.Count != (format == BpeFormat ? 1 : 2)) throw Bad("wrong number of files");
            var files = new List<VocabularyFile>();
            foreach (var node in list)
            {
                if (node is not JsonObject f) throw Bad("a file entry is not an object");
                string name = f["name"]?.GetValue<string>() ?? throw Bad("a file without a name");
                // A record names files beside the checkpoint, never a path elsewhere.
                if (name.Length == 0 || name != Path.GetFileName(name) || name is "." or ".." || name.Contains('\\') || name.Contains('/'))
                    throw Bad($"file name '{name}' is not a plain file name");
                string sha = f["sha256"]?.GetValue<string>() ?? throw Bad($"{name}: no sha256");
                if (sha.Length != 64 || !sha.All(char.IsAsciiHexDigitLower)) throw Bad($"{name}: sha256 is not 64 lower-case hex digits");
                long bytes = f["bytes"]?.GetValue<long>() ?? throw Bad($"{name}: no size");
                if (bytes < 0) throw Bad($"{name}: size {bytes}");
                files.Add(new VocabularyFile(name, sha, bytes));
            }
            return new VocabularyRecord(format, files, tokens);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException) { throw Bad(e.Message); }
    }

    /// <summary>The record in <paramref name="metadata"/> (checkpoint metadata), or null when there is none.</summary>
    public static VocabularyRecord? FromMetadata(IReadOnlyDictionary<string, string>? metadata, string source) =>
        metadata is not null && metadata.TryGetValue(MetadataKey, out var json) ? FromJson(json, source + " metadata") : null;
}
