namespace ClipSharp.Text;

/// <summary>
/// Finds the BPE vocabulary a tokenizer needs. ClipSharp does not ship OpenAI's vocabulary file; it reads it from
/// where the user keeps it, in this order: an explicit path; the environment variable CLIPSHARP_BPE_VOCAB;
/// the checkpoint's folder (<c>bpe_simple_vocab_16e6.txt.gz</c>, or Hugging Face <c>vocab.json</c> + <c>merges.txt</c>);
/// <c>~/.cache/clipsharp/</c>.
/// </summary>
public static class VocabularyLocator
{
    /// <summary>File name of the reference vocabulary.</summary>
    public const string BpeFileName = "bpe_simple_vocab_16e6.txt.gz";

    /// <summary>Environment variable naming a vocabulary file or folder.</summary>
    public const string EnvironmentVariable = "CLIPSHARP_BPE_VOCAB";

    /// <summary>Loads the tokenizer from the first vocabulary found; throws <see cref="FileNotFoundException"/>
    /// listing the places searched otherwise.</summary>
    /// <param name="explicitPath">A .txt.gz BPE file, a vocab.json (merges.txt beside it), or a folder holding either.</param>
    /// <param name="checkpointPath">A checkpoint file or folder whose folder is searched.</param>
    public static ClipTokenizer Load(string? explicitPath = null, string? checkpointPath = null)
    {
        var searched = new List<string>();
        if (explicitPath is not null)
        {
            var found = Probe(explicitPath, searched);
            return found ?? throw new FileNotFoundException($"no BPE vocabulary at {explicitPath} (expected {BpeFileName}, or vocab.json with merges.txt beside it)");
        }
        var env = Environment.GetEnvironmentVariable(EnvironmentVariable);
        var candidates = new List<string>();
        if (!string.IsNullOrEmpty(env)) candidates.Add(env);
        if (checkpointPath is not null)
            candidates.Add(Directory.Exists(checkpointPath) ? checkpointPath : Path.GetDirectoryName(Path.GetFullPath(checkpointPath))!);
        candidates.Add(Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "clipsharp"));
        foreach (var c in candidates)
        {
            var t = Probe(c, searched);
            if (t is not null) return t;
        }
        throw new FileNotFoundException(
            $"no BPE vocabulary found. Pass --vocab PATH ({BpeFileName} from the CLIP release, or a Hugging Face folder with vocab.json and merges.txt) " +
            $"or set {EnvironmentVariable}. Searched: {string.Join(", ", searched)}");
    }

    private static ClipTokenizer? Probe(string path, List<string> searched)
    {
        if (Directory.Exists(path))
        {
            var bpe = Path.Combine(path, BpeFileName);
            searched.Add(bpe);
            if (File.Exists(bpe)) return ClipTokenizer.FromBpeFile(bpe);
            var vocab = Path.Combine(path, "vocab.json");
            var merges = Path.Combine(path, "merges.txt");
            searched.Add(vocab);
            if (File.Exists(vocab) && File.Exists(merges)) return ClipTokenizer.FromHuggingFace(vocab, merges);
            return null;
        }
        searched.Add(path);
        if (!File.Exists(path)) return null;
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
        {
            var merges = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, "merges.txt");
            if (!File.Exists(merges)) throw new FileNotFoundException($"{path}: a Hugging Face vocab.json needs merges.txt beside it");
            return ClipTokenizer.FromHuggingFace(path, merges);
        }
        return ClipTokenizer.FromBpeFile(path);
    }
}
