using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using ClipSharp.Checkpoints;
using ClipSharp.Hub;
using ClipSharp.Modeling;
using ClipSharp.Tests.Modeling;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Hub;

/// <summary>The golden vit_small model in the forms the hub publishes, built in memory from ../shared/golden.</summary>
internal static class HubFixtures
{
    public const string OpenClipRepo = "clipsharp-test/vit-small";
    public const string HfRepo = "clipsharp-test/vit-small-hf";

    public static byte[] Weights => _weights.Value;
    static readonly Lazy<byte[]> _weights = new(() => File.ReadAllBytes(Golden.Path("models", "vit_small.safetensors")));

    public static byte[] JitWeights => _jit.Value;
    static readonly Lazy<byte[]> _jit = new(() => File.ReadAllBytes(Golden.Path("models", "vit_small.jit.pt")));

    /// <summary>vit_small's architecture as an OpenCLIP hub config (QuickGELU, 64-wide heads: one vision head, two text heads).</summary>
    public static byte[] OpenClipConfig => Encoding.UTF8.GetBytes(new JsonObject
    {
        ["model_cfg"] = new JsonObject
        {
            ["embed_dim"] = 64,
            ["quick_gelu"] = true,
            ["vision_cfg"] = new JsonObject { ["image_size"] = 64, ["layers"] = 2, ["width"] = 64, ["patch_size"] = 16 },
            ["text_cfg"] = new JsonObject { ["context_length"] = 77, ["vocab_size"] = 49408, ["width"] = 64, ["heads"] = 2, ["layers"] = 2 },
        },
        ["preprocess_cfg"] = new JsonObject
        {
            ["mean"] = new JsonArray(0.48145466, 0.4578275, 0.40821073),
            ["std"] = new JsonArray(0.26862954, 0.26130258, 0.27577711),
        },
    }.ToJsonString());

    /// <summary>The same architecture as a table entry would declare it (for registered test entries).</summary>
    public static readonly PretrainedArchitecture Architecture = new("vit-small-test", 64, 64, [2], 64, 16, 64, 2, 2);

    /// <summary>OpenAI's BPE vocabulary as Hugging Face's vocab.json and merges.txt, derived from the golden bpe_simple_vocab_16e6.txt.gz.</summary>
    public static (byte[] Vocab, byte[] Merges) Tokenizer => _tokenizer.Value;
    static readonly Lazy<(byte[], byte[])> _tokenizer = new(() =>
    {
        using var gz = new GZipStream(File.OpenRead(Golden.Path("bpe_simple_vocab_16e6.txt.gz")), CompressionMode.Decompress);
        var lines = new StreamReader(gz, Encoding.UTF8).ReadToEnd().Split('\n');
        var merges = lines.Skip(1).Take(49152 - 256 - 2).ToList();
        var byteChars = ByteToUnicode();
        var vocab = new List<string>(byteChars);
        vocab.AddRange(byteChars.Select(c => c + "</w>"));
        vocab.AddRange(merges.Select(m => m.Replace(" ", "", StringComparison.Ordinal)));
        vocab.Add("<|startoftext|>");
        vocab.Add("<|endoftext|>");
        var obj = new JsonObject();
        for (int i = 0; i < vocab.Count; i++) obj[vocab[i]] = i;
        return (Encoding.UTF8.GetBytes(obj.ToJsonString()), Encoding.UTF8.GetBytes("#version: 0.2\n" + string.Join("\n", merges) + "\n"));
    });

    /// <summary>GPT-2's byte-to-character mapping, in its order (printable bytes first, then the others shifted past 255).</summary>
    static List<string> ByteToUnicode()
    {
        var bs = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range('¡', '¬' - '¡' + 1)).Concat(Enumerable.Range('®', 'ÿ' - '®' + 1)).ToList();
        var cs = new List<int>(bs);
        int n = 0;
        for (int b = 0; b < 256; b++)
            if (!bs.Contains(b)) { bs.Add(b); cs.Add(256 + n++); }
        return cs.Select(c => char.ConvertFromUtf32(c)).ToList();
    }

    /// <summary>vit_small in the transformers layout: config.json and model.safetensors.</summary>
    public static (byte[] Config, byte[] Weights) HuggingFace => _hf.Value;
    static readonly Lazy<(byte[], byte[])> _hf = new(() =>
    {
        var config = ClipConfig.FromJsonFile(Golden.Path("models", "vit_small.config.json"));
        using var sd = SafeTensors.Load(Golden.Path("models", "vit_small.safetensors"));
        using var hf = HuggingFaceLayout.FromOpenAI(sd, config);
        var tmp = Path.GetTempFileName();
        try
        {
            SafeTensors.Save(tmp, hf, new Dictionary<string, string> { ["format"] = "pt" });
            return (Encoding.UTF8.GetBytes(HuggingFaceLayout.ToConfigJson(config)), File.ReadAllBytes(tmp));
        }
        finally { File.Delete(tmp); }
    });

    /// <summary>Adds the OpenCLIP-layout repository to a server, with tokenizer files as the LAION repositories have them.</summary>
    public static void AddOpenClipRepo(LoopbackHub hub, string repo = OpenClipRepo, bool withTokenizer = true)
    {
        hub.Add(repo, "open_clip_config.json", OpenClipConfig);
        hub.Add(repo, "open_clip_model.safetensors", Weights);
        if (!withTokenizer) return;
        hub.Add(repo, "vocab.json", Tokenizer.Vocab);
        hub.Add(repo, "merges.txt", Tokenizer.Merges);
    }

    public static void AddHfRepo(LoopbackHub hub, string repo = HfRepo)
    {
        hub.Add(repo, "config.json", HuggingFace.Config);
        hub.Add(repo, "model.safetensors", HuggingFace.Weights);
        hub.Add(repo, "vocab.json", Tokenizer.Vocab);
        hub.Add(repo, "merges.txt", Tokenizer.Merges);
    }

    /// <summary>Options for a test: the server as endpoint, caches in <paramref name="root"/>, no waiting between retries.</summary>
    public static PretrainedOptions Options(LoopbackHub hub, string root) => new()
    {
        Endpoint = hub.Endpoint,
        HubCacheDir = Path.Combine(root, "hf", "hub"),
        UrlCacheDir = Path.Combine(root, "clip"),
        ClipSharpCacheDir = Path.Combine(root, "clipsharp"),
        RetryDelay = _ => TimeSpan.Zero,
        MaxAttempts = 3,
    };

    /// <summary>Loads what was resolved and checks vit_small's image and text embeddings against the reference (relative error ≤ 1e-5).</summary>
    public static void AssertLoadsGoldenModel(string checkpointPath)
    {
        using var model = ClipModel.Load(checkpointPath);
        Assert.Equal(MlpActivation.QuickGelu, model.Config.Activation);
        var io = GoldenTensors.Load(Golden.Path("models", "vit_small.io.safetensors"));
        try
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            TensorAssert.Relative(model.EncodeImage(io["pixel_values"]), io["image_embeds"], 1e-5, "image_embeds");
            TensorAssert.Relative(model.EncodeText(io["input_ids"]), io["text_embeds"], 1e-5, "text_embeds");
        }
        finally
        {
            foreach (var t in io.Values) t.Dispose();
        }
    }
}
