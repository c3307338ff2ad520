//! AWS Labs' metrique EMF formatter, both dimension sets in one directive.
use lambda_runtime::{Error, LambdaEvent, service_fn};
use metrique_writer_core::format::Format as _;
use metrique_writer_core::unit::AsCount;
use metrique_writer_core::{Entry, EntryWriter};
use metrique_writer_format_emf::Emf;
use serde_json::Value;
use std::time::{Instant, SystemTime};

struct Count<'s> {
    stage: &'s str,
    function: &'s str,
    name: &'s str,
    value: AsCount<u64>,
}

impl Entry for Count<'_> {
    fn write<'a>(&'a self, w: &mut impl EntryWriter<'a>) {
        w.timestamp(SystemTime::now());
        w.value("Stage", self.stage);
        w.value("Function", self.function);
        w.value(self.name, &self.value);
    }
}

fn emf() -> Emf {
    Emf::all_validations(
        "Reelay".into(),
        vec![
            vec!["Stage".into()],
            vec!["Stage".into(), "Function".into()],
        ],
    )
}

fn emit(emf: &mut Emf, out: &mut Vec<u8>, function: &str, name: &str, value: u64) {
    let c = Count {
        stage: "prod",
        function,
        name,
        value: value.into(),
    };
    if let Err(e) = emf.format(&c, out) {
        eprintln!("{e}");
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // As every Reelay function starts (functions/*/src/main.rs).
    lambda_runtime::tracing::init_default_subscriber();
    if std::env::args().nth(1).as_deref() == Some("bench") {
        let t = Instant::now();
        let mut f = emf();
        let mut out = Vec::new();
        emit(&mut f, &mut out, "reconciler", "ReconcilerRun", 1);
        let first = t.elapsed();
        print!("{}", String::from_utf8_lossy(&out));
        println!(
            "metrique: first line (formatter built) {} ns",
            first.as_nanos()
        );
        let n = 200_000u32;
        let t = Instant::now();
        for i in 0..n {
            out.clear();
            emit(
                &mut f,
                &mut out,
                "reconciler",
                "ReconcilerRun",
                u64::from(i) + 1,
            );
        }
        println!(
            "metrique: {:.0} ns/emit",
            t.elapsed().as_nanos() as f64 / f64::from(n)
        );
        return Ok(());
    }
    let f = std::sync::Mutex::new(emf());
    let f = &f;
    lambda_runtime::run(service_fn(move |_e: LambdaEvent<Value>| async move {
        let mut out = Vec::new();
        if let Ok(mut g) = f.lock() {
            emit(&mut g, &mut out, "reconciler", "ReconcilerRun", 1);
        }
        print!("{}", String::from_utf8_lossy(&out));
        Ok::<_, Error>(Value::Null)
    }))
    .await
}
