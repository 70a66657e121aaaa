using System.CommandLine;
using ClipSharp.Checkpoints;
using ClipSharp.Training;
using static TorchSharp.torch;

namespace ClipSharp.Cli.Commands;

/// <summary><c>clip debug loss-grad</c>: the contrastive loss and every parameter's gradient for one batch, for porting checks.</summary>
internal static class DebugCommand
{
    public static Command Create()
    {
        var cmd = new Command("debug", "Debugging tools for model ports");
        cmd.Subcommands.Add(LossGrad());
        return cmd;
    }

    private static Command LossGrad()
    {
        var model = Common.ModelOption();
        var config = Common.ConfigOption();
        var pixels = new Option<string>("--pixel-values") { Description = "safetensors with 'pixel_values' [N,3,R,R] (or one tensor)", Required = true };
        var ids = new Option<string>("--input-ids") { Description = "safetensors with 'input_ids' [M,L] (or one tensor)", Required = true };
        var output = new Option<string>("--output", "-o") { Description = "safetensors to write: 'loss' and 'grad.<parameter>' for every parameter", Required = true };
        var loss = new Option<string>("--loss") { Description = "infonce (CLIP) or sigmoid (SigLIP, bias -10)", DefaultValueFactory = _ => "infonce" };
        loss.AcceptOnlyFromAmong("infonce", "sigmoid");
        var cmd = new Command("loss-grad", "Write the loss of the first min(N, M) image–text pairs and the gradient of every parameter (eval mode, float32)")
        { model, config, pixels, ids, output, loss };
        cmd.SetAction(r =>
        {
            using var m = Common.LoadModel(r.GetValue(model)!, r.GetValue(config));
            using var scope = NewDisposeScope();
            var px = Common.ReadTensor(r.GetValue(pixels)!, "pixel_values", stackImages: true);
            var tok = Common.ReadTensor(r.GetValue(ids)!, "input_ids", stackImages: false);
            long n = Math.Min(px.shape[0], tok.shape[0]);
            var kind = r.GetValue(loss) == "sigmoid" ? LossKind.Sigmoid : LossKind.Infonce;
            using var trainer = new ClipTrainer(m, new TrainerOptions
            {
                Loss = kind,
                AdamW = AdamWSettings.For(m.Config.IsVit, 0),
                Schedule = new CosineSchedule(1, 0, 1),
            });
            double value = trainer.LossAndBackward(px.narrow(0, 0, n), tok.narrow(0, 0, n));
            using var sd = new StateDict();
            sd.Add("loss", tensor((float)value));
            foreach (var (name, p) in trainer.NamedParameters())
                sd.Add("grad." + name, p.grad is { } g ? g.detach().clone() : zeros_like(p));
            SafeTensors.Save(r.GetValue(output)!, sd, new Dictionary<string, string> { ["pairs"] = n.ToString(System.Globalization.CultureInfo.InvariantCulture), ["loss"] = kind.ToString().ToLowerInvariant() });
            Console.Error.WriteLine($"loss {value:G9} over {n} pairs; wrote {sd.Count - 1} gradients to {r.GetValue(output)}");
            return 0;
        });
        return cmd;
    }
}
