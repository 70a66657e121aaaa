using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using ClipSharp.Checkpoints;
using ClipSharp.Modeling;
using ClipSharp.Tests.Evaluation;
using ClipSharp.Tests.Training;
using ClipSharp.Text;
using ClipSharp.Training;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Text;

/// <summary>
/// The tokenizer data in the box: OpenAI's vocabulary is built in and is the default; a checkpoint that has its own
/// vocabulary (recorded by the trainer, or a Hugging Face folder's) keeps it with no flags; a model whose vocab_size
/// differs from the vocabulary in use is refused in one line before any tensor work, in every text path.
/// </summary>
[Collection("console")]
public class VocabularyTests : IDisposable
{
    readonly TestData.TempDir tmp = new();

    public void Dispose() => tmp.Dispose();

    static string GoldenVocab => Golden.Path("bpe_simple_vocab_16e6.txt.gz");

    /// <summary>A vocabulary learned from the shape captions, like the demo's bpe-demo.txt.gz (40 merges: 554 tokens).</summary>
    static (string Path, ClipTokenizer Tokenizer) LearnedVocabulary(string dir, string name = "bpe-demo.txt.gz")
    {
        Directory.CreateDirectory(dir);
        string path = Path.Combine(dir, name);
        BpeTrainer.TrainToFile(Enumerable.Range(0, SyntheticShapes.Count).Select(SyntheticShapes.Caption), 40, path);
        return (path, ClipTokenizer.FromBpeFile(path));
    }

    static ClipConfig MicroFor(int vocabSize) => TinyModels.Micro with { VocabSize = vocabSize };

    /// <summary>A demo-like model: vocab_size = the learned vocabulary's size, the vocabulary recorded and beside the weights.</summary>
    static string DemoLikeModel(string dir, ClipTokenizer tokenizer)
    {
        string path = Path.Combine(dir, "final.safetensors");
        using var model = TinyModels.Create(seed: 3, config: MicroFor(tokenizer.VocabSize));
        model.Vocabulary = tokenizer.Vocabulary;
        VocabularyLocator.SaveBeside(tokenizer, dir);
        model.Save(path);
        return path;
    }

    static void AssertOneLineRefusal(int code, string err, params string[] mentions)
    {
        Assert.True(code == 1, $"exit {code}: {err}");
        var lines = err.Trim().Split('\n');
        Assert.True(lines.Length == 1, "expected one line on stderr, got:\n" + err);
        Assert.DoesNotContain("   at ", err);
        foreach (var m in mentions) Assert.Contains(m, err);
    }

    [Fact]
    public void TheBuiltInVocabularyIsTheReleasedFileByteForByte()
    {
        var bytes = ClipTokenizer.BuiltInBytes();
        Assert.Equal(File.ReadAllBytes(GoldenVocab), bytes);
        // The SHA-256 the golden README gives for the CLIP release's file.
        Assert.Equal("924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a", Convert.ToHexStringLower(SHA256.HashData(bytes)));
        var tok = ClipTokenizer.BuiltIn;
        Assert.Equal(49408, tok.VocabSize);
        Assert.True(tok.Vocabulary.IsBuiltIn);
        Assert.Contains("built into ClipSharp", tok.Source);
        // The golden file read from disk is recognised as the same vocabulary.
        Assert.Equal(tok.Vocabulary, ClipTokenizer.FromBpeFile(GoldenVocab).Vocabulary);
        foreach (var c in TokenizerCase.Load()) Assert.Equal(c.Ids, tok.Tokenize(c.Text, 77, truncate: true));

        // Its licence notice: at the repository root, and beside the assembly (the package packs the same file).
        var repo = new DirectoryInfo(AppContext.BaseDirectory);
        while (!File.Exists(Path.Combine(repo.FullName, "ClipSharp.slnx"))) repo = repo.Parent!;
        foreach (var notice in new[] { Path.Combine(repo.FullName, "THIRD-PARTY-NOTICES"), Path.Combine(AppContext.BaseDirectory, "THIRD-PARTY-NOTICES") })
        {
            var text = File.ReadAllText(notice);
            Assert.Contains("bpe_simple_vocab_16e6.txt.gz", text);
            Assert.Contains("Copyright (c) 2021 OpenAI", text);
            Assert.Contains("MIT License", text);
            Assert.Contains(ClipTokenizer.BuiltInSha256, text);
        }
    }

    [Fact]
    public void VocabularyRecordsRoundTripAndNameOnlyFilesBesideTheCheckpoint()
    {
        var (_, tok) = LearnedVocabulary(tmp["v"]);
        var back = VocabularyRecord.FromJson(tok.Vocabulary.ToJson(), "test");
        Assert.Equal(tok.Vocabulary, back);
        Assert.Equal(tok.VocabSize, back.Tokens);
        var escaping = tok.Vocabulary.ToJson().Replace("bpe-demo.txt.gz", "../../etc/bpe-demo.txt.gz", StringComparison.Ordinal);
        var e = Assert.Throws<InvalidDataException>(() => VocabularyRecord.FromJson(escaping, "ckpt.safetensors metadata"));
        Assert.Contains("not a plain file name", e.Message);
        Assert.Throws<InvalidDataException>(() => VocabularyRecord.FromJson("{\"format\":\"bpe\"}", "x"));
    }

    /// <summary>
    /// A run trained with a learned vocabulary (given as data.vocab from another folder) records it in final and step
    /// checkpoints and copies it beside the weights; the weights then load and tokenize with it with no flags, refuse
    /// clearly when moved without it, and a resume with another vocabulary is refused.
    /// </summary>
    [Fact]
    public void ATrainedCheckpointFindsItsOwnVocabularyWithNoFlags()
    {
        var (vocabPath, tok) = LearnedVocabulary(tmp["vocab-source"]);
        string init = tmp["init.safetensors"];
        using (var m = TinyModels.Create(seed: 4, config: MicroFor(tok.VocabSize))) m.Save(init);
        string runDir = tmp["run"];
        var cfg = RunTests.Config(runDir, init, steps: 4) with
        {
            Model = new ModelSection { Config = (System.Text.Json.Nodes.JsonObject)System.Text.Json.Nodes.JsonNode.Parse(MicroFor(tok.VocabSize).ToJson())!, InitFrom = init },
            Data = new DataSection { BatchSize = 8, Workers = 1, Prefetch = 2, Vocab = vocabPath },
            Output = new OutputSection { Dir = runDir, CheckpointEvery = 2, KeepLast = 2, EvalEvery = 0, LogEvery = 1, Tensorboard = false },
        };
        string final;
        using (var run = new TrainingRun(cfg, tmp.Path, tokenizer: null, sources: [RunTests.Shapes()]))
            final = run.Run().FinalWeights!;

        // Recorded in the final weights and in every step checkpoint; copied beside the weights.
        string copy = Path.Combine(runDir, "bpe-demo.txt.gz");
        Assert.Equal(File.ReadAllBytes(vocabPath), File.ReadAllBytes(copy));
        Assert.Equal(tok.Vocabulary, VocabularyRecord.FromMetadata(SafeTensors.ReadHeader(final).Metadata, final));
        var steps = new CheckpointStore(runDir).List();
        Assert.NotEmpty(steps);
        foreach (var step in steps)
        {
            var declared = VocabularyRecord.FromMetadata(SafeTensors.ReadHeader(step.Path).Metadata, step.Path);
            Assert.Equal(tok.Vocabulary, declared);
            // A step checkpoint in checkpoints/ finds the copy in the run folder above it.
            Assert.Equal(copy, VocabularyLocator.Load(null, step.Path, declared).Source);
        }

        using (var model = ClipModel.Load(final))
        {
            Assert.Equal(tok.Vocabulary, model.Vocabulary);
            Assert.Equal(copy, model.LoadTokenizer().Source);
        }

        // The CLI, no --vocab: the text embeddings are those of the learned vocabulary.
        string image = tmp["shape.png"];
        File.WriteAllBytes(image, SyntheticShapes.Png(0));
        string outPath = tmp["emb.safetensors"];
        var (code, _, err) = CliRunner.Run("encode", "-m", final, "--texts", "a red circle", "a blue square", "-o", outPath);
        Assert.True(code == 0, err);
        using (var model = ClipModel.Load(final))
        using (var scope = NewDisposeScope())
        using (var got = SafeTensors.Load(outPath))
            TensorAssert.Absolute(got["text_embeds"], model.EncodeTexts(["a red circle", "a blue square"], tok), 0, "text_embeds");
        (code, var stdout, err) = CliRunner.Run("similarity", "-m", final, image, "a red circle", "a blue square");
        Assert.True(code == 0, err);
        Assert.Contains("a red circle", stdout);

        // Moved without its vocabulary: one line naming it, not a fallback to another vocabulary.
        Directory.CreateDirectory(tmp["moved"]);
        string moved = Path.Combine(tmp["moved"], "final.safetensors");
        File.Copy(final, moved);
        (code, _, err) = CliRunner.Run("similarity", "-m", moved, image, "a red circle");
        AssertOneLineRefusal(code, err, "bpe-demo.txt.gz", "not beside it", "--vocab");

        // Converted to either layout, the weights take their vocabulary along.
        string converted = Path.Combine(tmp["converted"], "model.safetensors"), hfDir = tmp["converted-hf"];
        Directory.CreateDirectory(tmp["converted"]);
        foreach (var (target, layout) in new[] { (converted, "openai"), (hfDir, "hf") })
        {
            (code, _, err) = CliRunner.Run("convert", final, "--layout", layout, "-o", target);
            Assert.True(code == 0, err);
            (code, _, err) = CliRunner.Run("similarity", "-m", target, image, "a red circle", "a blue square");
            Assert.True(code == 0, layout + ": " + err);
        }
        Assert.True(File.Exists(Path.Combine(tmp["converted"], "bpe-demo.txt.gz")));
        Assert.True(File.Exists(Path.Combine(hfDir, "bpe-demo.txt.gz")));

        // Resuming with another vocabulary would give the embedding rows other meanings.
        using var other = new TrainingRun(cfg with { Data = cfg.Data with { Vocab = GoldenVocab }, Schedule = cfg.Schedule with { Steps = 6 } },
            tmp.Path, tokenizer: null, sources: [RunTests.Shapes()]);
        var e = Assert.Throws<InvalidDataException>(() => other.Run(resume: "latest"));
        Assert.Contains("trained with the vocabulary bpe-demo.txt.gz", e.Message);
    }

    /// <summary>Every CLI text path refuses a model/vocabulary size mismatch in one line, before encoding anything.</summary>
    [Fact]
    public void AMismatchIsRefusedInEveryTextPathBeforeAnyWork()
    {
        var (_, tok) = LearnedVocabulary(tmp["demo"]);
        string demo = DemoLikeModel(tmp["demo"], tok);
        string photos = TestData.ImageFolder(tmp["photos"], perClass: 1);
        string image = Path.Combine(photos, "red", "img0.png");
        string classes = tmp["classes.txt"];
        File.WriteAllLines(classes, ["red", "green", "blue"]);
        string index = tmp["photos.index.safetensors"];
        var (code, _, err) = CliRunner.Run("index", "-m", demo, photos, "-o", index, "-q");
        Assert.True(code == 0, err); // images only: no vocabulary involved

        string[] mentions = [$"vocab_size is {tok.VocabSize}", "49408 tokens", GoldenVocab];
        string encodeOut = tmp["enc.safetensors"], evalOut = tmp["eval"], cache = tmp["cache"];
        string[][] commands =
        [
            ["similarity", "-m", demo, "--vocab", GoldenVocab, image, "a red thing"],
            ["encode", "-m", demo, "--vocab", GoldenVocab, "--images", image, "--texts", "a red thing", "-o", encodeOut],
            ["predict", "-m", demo, "--vocab", GoldenVocab, photos, "--classnames", classes, "--cache-dir", cache, "-q"],
            ["search", "-i", index, "--vocab", GoldenVocab, "red"],
            ["eval", "zeroshot", "-m", demo, "--vocab", GoldenVocab, "--data", photos, "--cache-dir", cache, "-o", evalOut, "-q"],
        ];
        foreach (var args in commands)
        {
            (code, _, err) = CliRunner.Run(args);
            AssertOneLineRefusal(code, err, mentions);
        }
        // Refused before any image was encoded: no features cached, no output written.
        Assert.False(Directory.Exists(cache), "image features were computed before the refusal");
        Assert.False(File.Exists(encodeOut));
        Assert.False(Directory.Exists(evalOut));

        // The reverse: a 49,408-token model with a small vocabulary would run with meaningless ids.
        (code, _, err) = CliRunner.Run("similarity", "-m", Golden.Path("models", "vit_small.safetensors"),
            "--vocab", Path.Combine(tmp["demo"], "bpe-demo.txt.gz"), image, "a red thing");
        AssertOneLineRefusal(code, err, "vocab_size is 49408", $"{tok.VocabSize} tokens", "bpe-demo.txt.gz");

        // Token ids given directly are range-checked too (libtorch would abort on an id past the table).
        string ids = tmp["ids.safetensors"];
        using (var sd = new StateDict())
        {
            sd.Add("input_ids", tensor(new long[] { 49406, 60000, 49407 }).reshape(1, 3));
            SafeTensors.Save(ids, sd);
        }
        (code, _, err) = CliRunner.Run("encode", "-m", Golden.Path("models", "vit_small.safetensors"), "--input-ids", ids, "-o", encodeOut);
        AssertOneLineRefusal(code, err, "ids.safetensors", "60000", "49408");

        // The library entry points refuse the same way.
        using var model = ClipModel.Load(demo);
        Assert.Throws<VocabularyMismatchException>(() => model.EncodeTexts(["a red thing"], ClipTokenizer.BuiltIn));
        Assert.Throws<VocabularyMismatchException>(() => ClipSharp.ZeroShot.ZeroShotClassifier.Create(model, ClipTokenizer.BuiltIn, ["red"], ["{}"]));
        Assert.Throws<VocabularyMismatchException>(() => new ClipSharp.Evaluation.Evaluator(model, ClipTokenizer.BuiltIn));
        Assert.Equal(tok.Vocabulary, model.LoadTokenizer().Vocabulary);
    }

    /// <summary>
    /// Out of the box, in a clean environment (no --vocab, no CLIPSHARP_BPE_VOCAB, an empty home): `clip tokenize` uses
    /// the built-in vocabulary and reproduces the golden cases; a small-vocab model without a vocabulary of its own is
    /// refused with both sizes; a Hugging Face folder's own vocab.json/merges.txt wins over CLIPSHARP_BPE_VOCAB.
    /// </summary>
    [Fact]
    public void OutOfTheBoxTheBuiltInVocabularyIsTheDefault()
    {
        string home = tmp["home"];
        Directory.CreateDirectory(home);

        // Every golden case but the one holding a NUL character, which no process argument can carry (the library test covers it).
        var cases = TokenizerCase.Load().Where(c => !c.Text.Contains('\0')).ToList();
        Assert.True(cases.Count >= 170);
        var (code, stdout, err) = RunClip(home, null, ["tokenize", "--truncate", "--", .. cases.Select(c => c.Text)]);
        Assert.True(code == 0, err);
        var rows = JsonSerializer.Deserialize<int[][]>(stdout)!;
        Assert.Equal(cases.Count, rows.Length);
        for (int i = 0; i < cases.Count; i++) Assert.True(cases[i].Ids.SequenceEqual(rows[i]), $"case {i}: {cases[i].Text}");

        // The tiny test model (vocab_size 1000) has no vocabulary of its own: the built-in one does not fit it.
        string tinyDir = tmp["tiny"];
        Directory.CreateDirectory(tinyDir);
        string tiny = Path.Combine(tinyDir, "tiny.safetensors");
        using (var m = TinyModels.Create(seed: 5)) m.Save(tiny);
        string image = tmp["shape.png"];
        File.WriteAllBytes(image, SyntheticShapes.Png(1));
        (code, _, err) = RunClip(home, null, ["similarity", "-m", tiny, image, "a green circle"]);
        AssertOneLineRefusal(code, err, tiny, "vocab_size is 1000", "49408 tokens", "bpe_simple_vocab_16e6.txt.gz (built into ClipSharp)", "--vocab");

        // A Hugging Face folder with its own (learned) vocab.json and merges.txt, and CLIPSHARP_BPE_VOCAB naming OpenAI's.
        var (_, learned) = LearnedVocabulary(tmp["learned"]);
        string hf = tmp["hf"];
        Directory.CreateDirectory(hf);
        var vocab = new Dictionary<string, int>();
        for (int id = 0; id < learned.VocabSize; id++) vocab[learned.IdToToken(id)] = id;
        File.WriteAllText(Path.Combine(hf, "vocab.json"), JsonSerializer.Serialize(vocab));
        File.WriteAllLines(Path.Combine(hf, "merges.txt"), ["#version: 0.2", .. BpeTrainer.Learn(Enumerable.Range(0, SyntheticShapes.Count).Select(SyntheticShapes.Caption), 40).Select(p => $"{p.Left} {p.Right}")]);
        var config = MicroFor(learned.VocabSize);
        using (var m = TinyModels.Create(seed: 6, config: config))
        using (var openai = m.ExportStateDict())
        using (var hfState = HuggingFaceLayout.FromOpenAI(openai, config))
        {
            SafeTensors.Save(Path.Combine(hf, "model.safetensors"), hfState, new Dictionary<string, string> { ["format"] = "pt" });
            HuggingFaceLayout.WriteConfig(config, Path.Combine(hf, "config.json"));
        }
        string outPath = tmp["hf-emb.safetensors"];
        (code, _, err) = RunClip(home, GoldenVocab, ["encode", "-m", hf, "--texts", "a green circle", "-o", outPath]);
        Assert.True(code == 0, err);
        using var model = ClipModel.Load(hf);
        using var scope = NewDisposeScope();
        using var got = SafeTensors.Load(outPath);
        var own = ClipTokenizer.FromHuggingFace(Path.Combine(hf, "vocab.json"), Path.Combine(hf, "merges.txt"));
        TensorAssert.Absolute(got["text_embeds"], model.EncodeTexts(["a green circle"], own), 0, "text_embeds");
    }

    /// <summary>Runs the built `clip` in a child process with HOME at <paramref name="home"/> and CLIPSHARP_BPE_VOCAB as given (unset when null).</summary>
    static (int Code, string Out, string Err) RunClip(string home, string? envVocab, string[] args)
    {
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";
        var psi = new ProcessStartInfo(dotnet) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "exec", Path.Combine(AppContext.BaseDirectory, "clip.dll") }.Concat(args)) psi.ArgumentList.Add(a);
        psi.Environment["HOME"] = home;
        psi.Environment.Remove(VocabularyLocator.EnvironmentVariable);
        if (envVocab is not null) psi.Environment[VocabularyLocator.EnvironmentVariable] = envVocab;
        psi.Environment["OMP_NUM_THREADS"] = "1";
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        // A guard against a hang only: the process normally ends in a second or two.
        if (!p.WaitForExit(TimeSpan.FromMinutes(5))) { p.Kill(); throw new TimeoutException("clip did not exit"); }
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr.Result);
    }
}
