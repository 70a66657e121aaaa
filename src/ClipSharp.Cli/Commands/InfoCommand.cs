using System.CommandLine;
using ClipSharp.Checkpoints;
using ClipSharp.Modeling;

namespace ClipSharp.Cli.Commands;

/// <summary><c>clip info CKPT</c>: format, architecture, parameter counts and stored dtypes of a checkpoint.</summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var path = new Argument<string>("checkpoint") { Description = "Checkpoint file, Hugging Face folder, or pretrained name (ViT-B-32:openai, hf-hub:org/name)" };
        var config = Common.ConfigOption();
        var cmd = new Command("info", "Show a checkpoint's format, architecture, parameter counts and dtypes") { path, config };
        cmd.SetAction(r =>
        {
            var file = Common.ResolveModelArgument(r.GetValue(path)!);
            if (!File.Exists(file) && !Directory.Exists(file)) throw new CliException($"checkpoint not found: {file}");
            using var ckpt = CheckpointLoader.Load(file, upcastToFloat32: false);
            // The same resolution ClipModel.Load uses, so this reports the architecture a load would build.
            var configFile = r.GetValue(config);
            if (configFile is not null && !File.Exists(configFile)) throw new CliException($"--config {configFile}: file not found");
            var (cfg, source) = ClipModel.ResolveConfig(ckpt, configFile);
            // Never describe an architecture the weights contradict: a load would refuse the pair.
            if (ConfigFit.FirstMismatch(cfg, ckpt.State.Shapes()) is { } mismatch)
                throw new CliException(configFile is not null
                    ? $"--config {configFile} does not fit the weights of {file}: {mismatch}"
                    : $"{ConfigFit.Describe(source)} does not fit the weights of {file}: {mismatch}");

            long total = 0, visual = 0, text = 0, buffers = 0;
            var dtypes = new SortedDictionary<string, (int Count, long Elements)>();
            foreach (var (key, t) in ckpt.State)
            {
                long n = t.numel();
                var d = t.dtype.ToString();
                dtypes[d] = dtypes.TryGetValue(d, out var v) ? (v.Count + 1, v.Elements + n) : (1, n);
                if (key.Contains("running_") || key.EndsWith("num_batches_tracked")) { buffers += n; continue; }
                total += n;
                if (key.StartsWith("visual.")) visual += n;
                else if (key != "logit_scale") text += n;
            }
            var tower = cfg.IsVit
                ? $"ViT: {cfg.VisionLayers[0]} layers, width {cfg.VisionWidth}, {cfg.EffectiveVisionHeads} heads, MLP {cfg.VisionMlpWidth}, patch {cfg.VisionPatchSize}"
                : $"ModifiedResNet: stages [{string.Join(", ", cfg.VisionLayers)}], width {cfg.VisionWidth}, attention pool {cfg.EffectiveVisionHeads} heads";
            Console.WriteLine($"file:          {file}");
            Console.WriteLine($"format:        {ckpt.Format}");
            Console.WriteLine($"architecture:  {Describe(cfg)} ({source})");
            Console.WriteLine($"image tower:   {tower}, input {cfg.ImageResolution}px");
            Console.WriteLine($"text tower:    {cfg.TransformerLayers} layers, width {cfg.TransformerWidth}, {cfg.TransformerHeads} heads, MLP {cfg.TextMlpWidth}, context {cfg.ContextLength}, vocab {cfg.VocabSize}");
            Console.WriteLine($"activation:    {ClipConfig.ActivationName(cfg.Activation)}" + (source.StartsWith("inferred", StringComparison.Ordinal)
                ? " (assumed: the weights do not show it; OpenCLIP models trained with GELU need their config, see --config)" : ""));
            Console.WriteLine($"embedding:     {cfg.EmbedDim}");
            Console.WriteLine($"parameters:    {total:N0} (image {visual:N0}, text {text:N0}, logit_scale 1); buffers {buffers:N0}");
            Console.WriteLine($"tensors:       {ckpt.State.Count}");
            foreach (var (d, (count, elements)) in dtypes) Console.WriteLine($"  {d,-10} {count,5} tensors {elements,15:N0} elements");
            if (ckpt.State.TryGetValue("logit_scale", out var ls))
                Console.WriteLine($"logit_scale:   {ls.to(TorchSharp.torch.ScalarType.Float32).item<float>():F4} (scale {Math.Exp(ls.to(TorchSharp.torch.ScalarType.Float32).item<float>()):F2})");
            foreach (var (k, v) in ckpt.ScalarBuffers) Console.WriteLine($"extra scalar:  {k} = {v}");
            foreach (var note in ckpt.Notes) Console.WriteLine($"note:          {note}");
            return 0;
        });
        return cmd;
    }

    static string Describe(ClipConfig cfg)
    {
        foreach (var name in NamedArchitectures.Names)
            if (NamedArchitectures.Get(name).Equals(cfg)) return name;
        return "custom";
    }
}
